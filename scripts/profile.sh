#!/usr/bin/env bash
# Profiles our servers under each load of issue 24 (docs/performance.md):
# the server on core 0, the load on core 1, `perf record -e cpu-clock -g`
# on the server for the length of the load. Prints, per load, where the
# server's CPU went (kernel / our binary / libc / vdso) and its hottest
# user-space symbols.
#
#   cargo build --release -p evio-examples -p evio-benches
#   scripts/profile.sh [LOAD...]     # default: every load
#
# Loads: echo redis-p1 redis-p8 http http-close redis-close proxy.
# Needs perf, wrk, redis-benchmark. Writes /tmp/evio-profile-LOAD.data.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
secs=${SECS:-5}
port=19000

loads=("$@")
[ ${#loads[@]} -eq 0 ] && loads=(echo redis-p1 redis-p8 http http-close redis-close proxy)

for tool in perf wrk redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "profile.sh: $tool is not installed" >&2; exit 1; }
done

# server_cmd LOAD: the server command line for a load.
server_cmd() {
  case $1 in
    echo) echo "$bin/echo-server --port $port" ;;
    redis-*) echo "$bin/redis-server --port $port" ;;
    http|http-close) echo "$bin/http-server --port $port" ;;
    proxy) echo "$bin/proxy --port $port --backend 127.0.0.1:$((port + 1))" ;;
  esac
}

# load_cmd LOAD: the load generator for it (runs about $secs seconds).
load_cmd() {
  case $1 in
    echo|proxy) echo "$bin/loadgen --addr 127.0.0.1:$port --conns 50 --size 64 --depth 1 --duration $secs --warmup 0" ;;
    redis-p1) echo "redis-benchmark -p $port -c 50 -P 1 -t ping_inline -n $((secs * 60000)) -q" ;;
    redis-p8) echo "redis-benchmark -p $port -c 50 -P 8 -t set -n $((secs * 300000)) -q" ;;
    redis-close) echo "redis-benchmark -p $port -c 50 -k 0 -t ping_inline -n $((secs * 12000)) -q" ;;
    http) echo "wrk -t1 -c50 -d${secs}s http://127.0.0.1:$port/" ;;
    http-close) echo "wrk -t1 -c50 -d${secs}s -H 'Connection: close' http://127.0.0.1:$port/" ;;
  esac
}

for load in "${loads[@]}"; do
  cmd=$(server_cmd "$load")
  [ -n "$cmd" ] || { echo "profile.sh: unknown load $load" >&2; exit 2; }
  backend=
  if [ "$load" = proxy ]; then
    # The backend shares the load's core, as in the benchmark.
    taskset -c 1 "$bin/mio-echo" --port $((port + 1)) >/dev/null 2>&1 &
    backend=$!
  fi
  # shellcheck disable=SC2086
  taskset -c 0 $cmd >/dev/null 2>&1 &
  server=$!
  sleep 0.5
  data=/tmp/evio-profile-$load.data
  perf record -q -e cpu-clock -g -p "$server" -o "$data" >/dev/null 2>&1 &
  rec=$!
  sleep 0.3
  eval "taskset -c 1 $(load_cmd "$load")" >/tmp/evio-profile-$load.load 2>&1 || true
  kill -INT "$rec"; wait "$rec" 2>/dev/null || true
  kill "$server"; wait "$server" 2>/dev/null || true
  [ -n "$backend" ] && { kill "$backend"; wait "$backend" 2>/dev/null || true; }
  echo "== $load: $(grep -E 'Requests/sec|requests per second|msgs/s|rate' /tmp/evio-profile-$load.load | head -1 | tr -s ' ')"
  perf report -i "$data" --no-children --sort dso -g none 2>/dev/null | grep -E '^ +[0-9]' | head -5
  echo "  hottest user-space symbols:"
  perf report -i "$data" --no-children --sort sym -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | grep -v '\[k\]' | head -12
done
