#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus from the protocol transcripts.

    make-seeds.py OUTDIR protocol/examples/*.jsonl

Every {"send": {...}} line becomes a file holding that request written compactly plus
"\n" (as the transcript replayer sends it) and every {"sendRaw": "..."} line a file
holding exactly those UTF-8 bytes. Files are named after the transcript and line number.
"""
import json
import os
import sys


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    count = 0
    for path in sys.argv[2:]:
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as transcript:
            for number, text in enumerate(transcript, start=1):
                if not text.strip():
                    continue
                step = json.loads(text)
                if "send" in step:
                    data = json.dumps(step["send"], separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                elif "sendRaw" in step:
                    data = step["sendRaw"].encode("utf-8", "surrogatepass")
                else:
                    continue
                with open(os.path.join(outdir, f"{stem}-{number:03}"), "wb") as seed:
                    seed.write(data)
                count += 1
    print(f"fuzz seeds: {count} inputs from {len(sys.argv) - 2} transcripts in {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
