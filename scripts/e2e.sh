#!/usr/bin/env bash
# End-to-end checks of the example servers with real clients: redis-cli,
# redis-benchmark, wrk and curl (apt: redis-tools wrk curl), the same over
# TLS (and openssl s_client) on the binaries' --tls-port, then the
# benchmark runner in smoke mode. Every run is bounded in time and talks to
# 127.0.0.1 only. Skips (with a message) what a tool is missing for.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p evio-examples -p evio-benches
bin=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts a server in the background and waits until its port accepts.
start() { # name port args...
  local name=$1 port=$2; shift 2
  "$bin/$name" --port "$port" "$@" 2>"target/e2e-$name.log" &
  pids+=($!)
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "FAIL: $name did not start"; cat "target/e2e-$name.log"; return 1
}

# Starts a server on free ports (--port 0, and --tls-port 0 in its TLS
# flags) and reads them from its startup line into $port and $tls_port, so
# that a port taken by another program cannot be mistaken for ours.
start_free() { # name log-tag args...
  local name=$1 log="target/e2e-$2.log"; shift 2
  "$bin/$name" --port 0 "$@" 2>"$log" &
  pids+=($!)
  for _ in $(seq 200); do
    if grep -q 'started on port' "$log" 2>/dev/null; then
      port=$(grep -o 'started on port [0-9]*' "$log" | grep -o '[0-9]*$')
      tls_port=$(grep -o 'TLS port [0-9]*' "$log" | grep -o '[0-9]*$' || true)
      return 0
    fi
    sleep 0.05
  done
  echo "FAIL: $name did not start"; cat "$log"; return 1
}

passed=0; failed=0
check() { # description, command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; passed=$((passed+1)); else echo "FAIL: $what"; failed=$((failed+1)); fi
}

# --- redis-server with redis-cli and redis-benchmark --------------------------
if command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null; then
  start redis-server 16380
  cli() { timeout 10 redis-cli -p 16380 "$@"; }
  check "redis-cli PING" test "$(cli PING)" = PONG
  check "redis-cli SET" test "$(cli SET greeting 'hello world')" = OK
  check "redis-cli GET" test "$(cli GET greeting)" = "hello world"
  check "redis-cli INCR" test "$(cli INCR counter)" = 1
  check "redis-cli unknown command error" sh -c "timeout 10 redis-cli -p 16380 FOO bar | grep -q \"unknown command 'FOO'\""
  for p in 1 16; do
    out=$(timeout 120 redis-benchmark -p 16380 -t ping_inline,ping_mbulk,set,get,incr,mset \
          -n 20000 -c 50 -P "$p" -q 2>&1)
    echo "$out" | tr '\r' '\n' | grep -E 'requests per second' || true
    check "redis-benchmark -P $p: six tests, no errors" \
      sh -c "echo \"\$0\" | tr '\r' '\n' | grep -c 'requests per second' | grep -qx 6 && ! echo \"\$0\" | grep -qiE 'error|warning'" "$out"
  done
else
  echo "skip: redis-cli/redis-benchmark not installed"
fi

# --- http-server with curl and wrk ----------------------------------------------
start http-server 18080
if command -v curl >/dev/null; then
  check "curl GET /" test "$(timeout 10 curl -s http://127.0.0.1:18080/ | od -c | head -1)" = "$(printf 'Hello World!\r\n' | od -c | head -1)"
  check "curl keep-alive (two requests, one connection)" sh -c \
    "timeout 10 curl -sv http://127.0.0.1:18080/ http://127.0.0.1:18080/ 2>&1 | grep -q 'Re-using existing connection'"
  check "curl 404 for other paths" test "$(timeout 10 curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/nope)" = 404
  # A 2 MiB upload over the 1 MiB body limit, sent without waiting for 100
  # Continue: the lingering close lets curl read the 413 instead of a reset.
  head -c 2097152 /dev/zero > target/e2e-upload.bin
  check "curl upload over the body limit gets 413, not a reset (lingering close)" test \
    "$(timeout 20 curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' --data-binary @target/e2e-upload.bin http://127.0.0.1:18080/)" = 413
else
  echo "skip: curl not installed"
fi
if command -v wrk >/dev/null; then
  out=$(timeout 30 wrk -t1 -c50 -d3s http://127.0.0.1:18080/ 2>&1)
  echo "$out" | grep -E 'Requests/sec|Socket errors|Non-2xx' || true
  check "wrk -d 3s: requests served, no socket errors, no non-2xx" \
    sh -c "echo \"\$0\" | grep -q 'Requests/sec' && ! echo \"\$0\" | grep -qE 'Socket errors|Non-2xx'" "$out"
else
  echo "skip: wrk not installed"
fi

# A silent connection is closed by the header timeout (1 s here).
start http-server 18081 --header-timeout 1
silent_closed() { # port: connect, send nothing, wait for the server's close
  exec 3<>"/dev/tcp/127.0.0.1/$1" && timeout 5 cat <&3 >/dev/null; local rc=$?; exec 3<&-; return $rc
}
check "http-server --header-timeout 1 closes a silent connection" silent_closed 18081

# --- proxy: half-closes forwarded (nc -N) ------------------------------------------
if command -v nc >/dev/null && nc -h 2>&1 | grep -q -- '-N'; then
  start redis-server 16381
  start proxy 17001 --backend 127.0.0.1:16381
  check "printf PING | nc -N through the proxy gets +PONG" test \
    "$(printf 'PING\r\n' | timeout 10 nc -N 127.0.0.1 17001 | tr -d '\r')" = "+PONG"
else
  echo "skip: netcat-openbsd (nc -N) not installed"
fi

# --- TLS: the same binaries with --tls-port, real TLS clients ----------------------
# A throwaway self-signed certificate for localhost and 127.0.0.1 (deleted
# on exit). CA:FALSE because the proxy's --backend-tls (rustls) refuses a
# server certificate marked as a CA, which `openssl req -x509` does by
# default; OpenSSL clients take it either way.
if command -v openssl >/dev/null; then
  tlsdir=$(mktemp -d)
  trap 'cleanup; rm -rf "$tlsdir"' EXIT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE \
    -keyout "$tlsdir/key.pem" -out "$tlsdir/cert.pem" 2>/dev/null
  ca=$tlsdir/cert.pem
  tls=(--tls-port 0 --tls-cert "$tlsdir/cert.pem" --tls-key "$tlsdir/key.pem")
  req='GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

  start_free http-server http-tls "${tls[@]}"; https_port=$tls_port
  if command -v curl >/dev/null; then
    https() { timeout 10 curl -sS --cacert "$ca" --resolve "localhost:$https_port:127.0.0.1" "$@"; }
    url=https://localhost:$https_port/
    check "curl https GET /" test "$(https "$url" | tr -d '\r')" = "Hello World!"
    out=$(https -v "$url" "$url" 2>&1 || true)
    check "curl https: ALPN http/1.1, two requests on one connection" sh -c \
      "echo \"\$0\" | grep -q 'ALPN: server accepted http/1.1' && echo \"\$0\" | grep -q 'Re-using existing connection'" "$out"
  fi
  for v in 1_2 1_3; do
    out=$(printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$https_port" -CAfile "$ca" \
          -verify_return_error -ign_eof "-tls$v" 2>&1 || true)
    check "openssl s_client -tls$v: verified, served" sh -c \
      "echo \"\$0\" | grep -q 'Verify return code: 0 (ok)' && echo \"\$0\" | grep -q 'Hello World!'" "$out"
  done
  if command -v wrk >/dev/null; then
    out=$(timeout 30 wrk -t1 -c50 -d2s "https://127.0.0.1:$https_port/" 2>&1)
    echo "$out" | grep -E 'Requests/sec|Socket errors|Non-2xx' || true
    check "wrk https -d 2s: requests served, no socket errors, no non-2xx" \
      sh -c "echo \"\$0\" | grep -q 'Requests/sec' && ! echo \"\$0\" | grep -qE 'Socket errors|Non-2xx'" "$out"
  fi

  if command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null; then
    start_free redis-server redis-tls "${tls[@]}"; rplain=$port; rtls=$tls_port
    tcli() { timeout 10 redis-cli --tls --cacert "$ca" -p "$1" "${@:2}"; }
    check "redis-cli --tls PING" test "$(tcli "$rtls" PING)" = PONG
    check "redis-cli --tls SET" test "$(tcli "$rtls" SET greeting 'hello tls')" = OK
    check "redis-cli --tls GET" test "$(tcli "$rtls" GET greeting)" = "hello tls"
    out=$(timeout 120 redis-benchmark --tls --cacert "$ca" -p "$rtls" -t ping_inline,set,get \
          -n 20000 -c 50 -P 16 -q 2>&1 || true)
    echo "$out" | tr '\r' '\n' | grep -E 'requests per second' || true
    check "redis-benchmark --tls -P 16: three tests, no errors" \
      sh -c "echo \"\$0\" | tr '\r' '\n' | grep -c 'requests per second' | grep -qx 3 && ! echo \"\$0\" | grep -qiE 'error|warning'" "$out"
    # Issue 19: a reply larger than the socket buffer, over TLS, read at
    # once and by a late reader, on both backends.
    head -c 1048576 /dev/zero | tr '\0' a > "$tlsdir/v"
    check "redis-cli --tls -x SET of 1 MiB" test "$(tcli "$rtls" -x SET big < "$tlsdir/v")" = OK
    check "redis-cli --tls GET of 1 MiB: every byte" test "$(tcli "$rtls" GET big | wc -c)" -eq 1048577
    check "redis-cli --tls GET of 1 MiB, read after 2 s: every byte" \
      test "$(tcli "$rtls" GET big | (sleep 2; wc -c))" -eq 1048577
    rtls_epoll=$rtls; rplain_epoll=$rplain
    start_free redis-server redis-tls-poll --poller poll "${tls[@]}"
    check "--poller poll: redis-cli --tls GET of 1 MiB, read after 2 s" sh -c \
      "timeout 10 redis-cli --tls --cacert '$ca' -p $tls_port -x SET big < '$tlsdir/v' >/dev/null &&
       test \"\$(timeout 10 redis-cli --tls --cacert '$ca' -p $tls_port GET big | (sleep 2; wc -c))\" -eq 1048577"
    rtls=$rtls_epoll; rplain=$rplain_epoll
    # The proxy terminating TLS in front of the plain port, and dialing the
    # TLS port for plain clients.
    start_free proxy proxy-tls "${tls[@]}" --backend "127.0.0.1:$rplain"
    check "redis-cli --tls through the proxy to a plain backend" test "$(tcli "$tls_port" GET greeting)" = "hello tls"
    start_free proxy proxy-backend-tls --backend "127.0.0.1:$rtls" --backend-tls --backend-ca "$ca"
    check "redis-cli through proxy --backend-tls to the TLS port" \
      test "$(timeout 10 redis-cli -p "$port" GET greeting)" = "hello tls"
  else
    echo "skip: redis-cli/redis-benchmark not installed (TLS)"
  fi
else
  echo "skip: openssl not installed (TLS checks)"
fi

# --- echo-server over TCP with the benches' verifying load generator ----------
start echo-server 15000
check "loadgen echo 50x64Bx1 verified" sh -c \
  "timeout 30 $bin/loadgen --addr 127.0.0.1:15000 --conns 50 --size 64 --depth 1 --duration 1 >/dev/null"

cleanup; pids=()

# --- the benchmark runner, smoke mode ---------------------------------------------
check "bench --smoke" timeout 600 "$bin/bench" --smoke

echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
