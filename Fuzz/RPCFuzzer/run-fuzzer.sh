#!/bin/bash
# Runs the request-path fuzzer for a bounded time; exits non-zero on any finding.
#
#   run-fuzzer.sh FUZZER WORKDIR SECONDS [--quiet]
#
# WORKDIR holds corpus/ (grown in place and kept between runs), corpus-seed/ (from
# make-seeds.py), artifacts/ (crash-*, leak-*, timeout-*, oom-* inputs) and one log per run.
# The regressions beside this script seed the run too (cut to FUZZ_MAX_LEN bytes).
# With --quiet, libFuzzer's progress goes only to the log and one summary line is printed.
#
# Environment: FUZZ_MAX_LEN (default 4096), FUZZ_TIMEOUT (seconds per input, default 10),
# FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_FLAGS (more libFuzzer flags).
set -u -o pipefail

if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
fuzzer=$1 work=$2 seconds=$3 quiet=${4:-}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$work/corpus" "$work/corpus-seed" "$work/artifacts"
log="$work/fuzz-$(date +%Y%m%d-%H%M%S).log"
started="$work/.started"
touch "$started"

# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
command=("$fuzzer"
    -max_total_time="$seconds"
    -max_len="${FUZZ_MAX_LEN:-4096}"
    -timeout="${FUZZ_TIMEOUT:-10}"
    -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
    -print_final_stats=1
    -use_value_profile=1
    -dict="$here/json.dict"
    -artifact_prefix="$work/artifacts/"
    ${FUZZ_FLAGS:-}
    "$work/corpus" "$work/corpus-seed" "$here/regressions")

echo "fuzz: ${command[*]}"
if [ "$quiet" = --quiet ]; then
    "${command[@]}" >"$log" 2>&1
else
    "${command[@]}" 2>&1 | tee "$log"
fi
status=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1)
field() { printf '%s\n' "$last" | sed -nE "s/.* $1 ([^ ]+).*/\1/p"; }
corpus=$(field 'corp:')
findings=$(find "$work/artifacts" -type f -newer "$started" \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
reports=$(grep -E '^==[0-9]+==ERROR|^SUMMARY: (Address|Leak|Undefined)|ERROR: libFuzzer|Fatal error' "$log" | head -5)

summary="fuzz: $(stat number_of_executed_units) runs in ${seconds}s ($(stat average_exec_per_sec)/s),"
summary+=" coverage $(field 'cov:') edges / $(field 'ft:') features,"
summary+=" corpus ${corpus%%/*} inputs (${corpus#*/}), $(stat new_units_added) new,"
summary+=" peak RSS $(stat peak_rss_mb) MB"

if [ $status -eq 0 ] && [ -z "$findings" ] && [ -z "$reports" ]; then
    echo "$summary: no crash, leak, timeout or sanitizer report (log: $log)"
    exit 0
fi

echo "$summary"
echo "fuzz: FAILED (libFuzzer exit status $status); the end of $log:"
tail -n 80 "$log" | sed 's/^/    /'
if [ -n "$findings" ]; then
    echo "fuzz: inputs that reproduce it:"
    for f in $findings; do
        echo "    $f"
    done
    echo "fuzz: replay one with '$fuzzer FILE', shrink it with"
    echo "      '$fuzzer -minimize_crash=1 -max_total_time=300 FILE', then keep the result in"
    echo "      $here/regressions/ under a name that says what it is."
fi
exit 1
