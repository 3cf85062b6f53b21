#!/bin/bash
# CPU time per task of a ccmulti node draining a Redis queue: the node's loop, its pool processes and
# redis-server, from /proc/<pid>/stat. Not a test (ctest and CI never run it).
#
#   bench/cpu_per_task.sh [TASKS] [BUILD_DIR]     defaults: 30000, build/release (broker_probe from build/default)
#
# It starts a private redis-server on a free port, publishes TASKS calls of ccmulti.echo with broker_probe,
# starts one `ccmulti worker -c 2`, waits until the queue and `unacked` are empty, and prints the drain rate and
# microseconds of CPU per task of each process.
set -euo pipefail
tasks=${1:-30000}
build=${2:-build/release}
ccmulti=$(realpath "$build/src/ccmulti")
probe=$(realpath "$(ls build/*/tests/broker_probe 2>/dev/null | head -1)")
[ -x "$ccmulti" ] && [ -x "$probe" ] || { echo "build ccmulti and broker_probe first (scripts/demo, scripts/test)" >&2; exit 2; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" >/dev/null
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
cli() { redis-cli -p "$port" "$@"; }
until [ "$(cli ping 2>/dev/null)" = PONG ]; do sleep 0.05; done
url=redis://127.0.0.1:$port/0

"$probe" publish-many "$url" ccmulti.echo '[1]' bench "$tasks" >/dev/null
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
redis_pid=$(cat "$dir/redis.pid")
redis_before=$(cpu_ticks "$redis_pid")
start=$(date +%s.%N)
CCMULTI_STATE_DIR=$dir CCMULTI_RUN_DIR=$dir "$ccmulti" worker -n bench@h -Q bench -c 2 -l WARNING --broker "$url" &
node=$!
while [ "$(cli llen bench)" != 0 ] || [ "$(cli hlen unacked)" != 0 ]; do sleep 0.02; done
end=$(date +%s.%N)
node_ticks=$(cpu_ticks "$node")
pool_ticks=0
for child in $(pgrep -P "$node"); do pool_ticks=$((pool_ticks + $(cpu_ticks "$child"))); done
redis_ticks=$(( $(cpu_ticks "$redis_pid") - redis_before ))
kill -TERM "$node"
wait "$node" || true

hz=$(getconf CLK_TCK)
per_task() { echo "scale=1; $1 * 1000000 / $hz / $tasks" | bc; }
printf '%d tasks in %.2f s: %.0f tasks/s (including the start of the node)\n' "$tasks" \
    "$(echo "$end - $start" | bc)" "$(echo "$tasks / ($end - $start)" | bc -l)"
echo "CPU per task: node loop $(per_task "$node_ticks") µs, pool processes $(per_task "$pool_ticks") µs," \
     "redis-server $(per_task "$redis_ticks") µs"
