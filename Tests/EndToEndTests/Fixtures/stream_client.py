#!/usr/bin/python3
"""A third-party nsgroup client written from protocol/PROTOCOL.md alone (§2, §3, §7,
§8.6, §8.10, §8.18): enters a group with "stdio": "stream", relays its own stdin, stdout
and stderr keeping to the input window, and exits with the session's status (a signal N
as 128+N).

usage: stream_client.py SOCKET GROUP [--] ARGV...

With STREAM_CLIENT_TRACE=FILE set it notes in FILE, one line each, the end of each
output stream ("eof 1"), the input window closing ("window closed") and the end
("exited CODE SIGNAL").
"""
import base64
import json
import os
import select
import socket
import sys

CHUNK = 16384


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        sys.stderr.write("usage: stream_client.py SOCKET GROUP [--] ARGV...\n")
        return 2
    path, group, argv = args[0], args[1], args[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    pending = bytearray()  # lines not yet sent (§3: read replies while writing)
    received = bytearray()

    def send(message):
        pending.extend(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    send({"jsonrpc": "2.0", "method": "enter", "id": 1,
          "params": {"name": group, "tty": False, "stdio": "stream", "argv": argv}})

    session = None
    window = 0            # bytes we may still send (§8.18 "Input, and its window")
    input_open = True     # our stdin not yet at end of file
    input_closed = False  # the server said window closed: send nothing more
    eof_sent = False
    stdin_fd = sys.stdin.fileno()
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    trace_path = os.environ.get("STREAM_CLIENT_TRACE")
    trace_file = open(trace_path, "a") if trace_path else None

    def trace(text):
        if trace_file:
            trace_file.write(text + "\n")
            trace_file.flush()

    def handle(message):
        nonlocal session, window, input_closed
        if "id" in message:  # a response (§3: tell them apart by shape)
            if message.get("id") == 1:
                if "error" in message:
                    error = message["error"]
                    sys.stderr.write("stream_client: %s (%s)\n" % (error.get("message"), error.get("data", {}).get("reason")))
                    sys.exit(125)
                session = message["result"]["session"]
                window = message["result"]["window"]
            elif "error" in message:
                sys.stderr.write("stream_client: unexpected error %r\n" % message)
            return None
        method, params = message.get("method"), message.get("params", {})
        if params.get("session") != session:
            return None
        if method == "output":
            if "data" in params:
                out = outputs[params["fd"]]
                try:
                    out.write(base64.b64decode(params["data"], validate=True))
                    out.flush()
                except BrokenPipeError:
                    pass
            else:
                trace("eof %d" % params["fd"])
        elif method == "window":
            if params.get("closed"):
                input_closed = True
                trace("window closed")
            else:
                window += params["bytes"]
        elif method == "exited":
            trace("exited %s %s" % (params.get("code"), params.get("signal")))
            if params.get("code") is not None:
                return params["code"]
            if params.get("signal") is not None:
                return 128 + params["signal"]
            return 1
        return None

    while True:
        readers = [sock]
        want_input = session is not None and input_open and not input_closed and window > 0
        if want_input:
            readers.append(stdin_fd)
        writers = [sock] if pending else []
        readable, writable, _ = select.select(readers, writers, [])
        if sock in writable:
            sent = sock.send(pending)
            del pending[:sent]
        if sock in readable:
            data = sock.recv(1 << 16)
            if not data:
                sys.stderr.write("stream_client: the server closed the connection\n")
                return 125
            received.extend(data)
            while True:
                end = received.find(b"\n")
                if end < 0:
                    break
                line = bytes(received[:end])
                del received[:end + 1]
                status = handle(json.loads(line))
                if status is not None:
                    return status
        if stdin_fd in readable and not input_closed:
            data = os.read(stdin_fd, min(window, CHUNK))
            if data:
                window -= len(data)
                send({"jsonrpc": "2.0", "method": "write",
                      "params": {"session": session, "data": base64.b64encode(data).decode()}})
            else:
                input_open = False
        if not input_open and not eof_sent and not input_closed and session is not None:
            eof_sent = True
            send({"jsonrpc": "2.0", "method": "write", "params": {"session": session, "eof": True}})


if __name__ == "__main__":
    sys.exit(main())
