#!/bin/bash
# Where a ccmulti node's CPU goes while it drains a Redis queue: `perf record -g` of one `ccmulti worker -c 2`
# (the node's loop and its pool processes) draining TASKS calls of ccmulti.echo, then the top symbols by self
# time. Not a test. Needs linux-perf (Debian) and permission to profile (root, or kernel.perf_event_paranoid <= 1).
#
#   bench/profile_drain.sh [TASKS] [BUILD_DIR]     defaults: 100000, build/release
#
# perf.data stays in $PROFILE_DIR (default: a temporary directory, removed) for `perf report -i`.
set -euo pipefail
tasks=${1:-100000}
build=${2:-build/release}
ccmulti=$(realpath "$build/src/ccmulti")
[ -x "$ccmulti" ] || { echo "build ccmulti first (bench/run, scripts/demo)" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }

dir=$(mktemp -d)
out=${PROFILE_DIR:-$dir}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" >/dev/null
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
cli() { redis-cli -p "$port" "$@"; }
until [ "$(cli ping 2>/dev/null)" = PONG ]; do sleep 0.05; done
url=redis://127.0.0.1:$port/0
export CCMULTI_STATE_DIR=$dir CCMULTI_RUN_DIR=$dir CCMULTI_LOG_DIR=$dir

"$ccmulti" call ccmulti.echo '[1]' -Q bench --count "$tasks" --broker "$url" >/dev/null
start=$(date +%s.%N)
perf record -q ${PERF_CALL_GRAPH:--g} -F ${PERF_FREQ:-2000} -o "$out/perf.data" -- \
    "$ccmulti" worker -n bench@h -Q bench -c 2 -l WARNING --broker "$url" 2>/dev/null &
perf_pid=$!
sleep 0.2
while [ "$(cli llen bench)" != 0 ] || [ "$(cli hlen unacked)" != 0 ]; do sleep 0.02; done
end=$(date +%s.%N)
worker=$(pgrep -P "$perf_pid" || true)  # perf's only child: the worker (its pool processes stop with it)
[ -n "$worker" ] && kill -TERM $worker
wait "$perf_pid" || true
printf '%d tasks in %.2f s under perf: %.0f tasks/s\n' "$tasks" "$(echo "$end - $start" | bc)" \
    "$(echo "$tasks / ($end - $start)" | bc -l)"
# Self time by process and symbol; template arguments left out (nlohmann::basic_json<...> is json).
perf report -i "$out/perf.data" --no-children --sort comm,symbol -g none --percent-limit 0.7 --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -40 | python3 -c '
import re, sys
for line in sys.stdin:
    line = re.sub(r"nlohmann::json_abi_v[0-9_]+::", "nlohmann::", line.rstrip())
    while re.search(r"<[^<>]*>", line):
        line = re.sub(r"<[^<>]*>", "", line)
    print(re.sub(r"\s+", " ", line).strip()[:150])'
