#!/usr/bin/env bash
# Packs what the benchmark runner needs into one directory, for a machine
# that cannot install or download anything (e.g. a many-core box for the
# scaling workload):
#   KIT/bin    the release binaries (bench, loadgen, the peers, ours),
#              debug info stripped
#   KIT/tools  wrk, nginx, redis-benchmark, redis-server, haproxy, strace
#              (those installed here), each as a wrapper that runs the
#              binary from KIT/tools/real with the shared libraries it needs
#              from KIT/tools/lib (glibc itself is not copied: the target
#              needs a glibc at least as new as this machine's)
# Usage: scripts/bench-kit.sh KIT   (after cargo build --release --workspace)
# Then on the target:
#   EVIO_BIN_DIR=KIT/bin EVIO_BENCH_TOOLS=KIT/tools KIT/bin/bench \
#       --workloads scaling --loops 1,2,4,8
set -euo pipefail
cd "$(dirname "$0")/.."
kit=${1:?usage: scripts/bench-kit.sh KIT}
mkdir -p "$kit/bin" "$kit/tools/real" "$kit/tools/lib"
for b in bench loadgen tokio-echo mio-echo floor-server soak-client \
         echo-server http-server redis-server proxy http-proxy; do
  if [ -f "target/release/$b" ]; then
    strip --strip-debug -o "$kit/bin/$b" "target/release/$b" 2>/dev/null \
      || cp "target/release/$b" "$kit/bin/$b"
  else
    echo "bench-kit: target/release/$b not built; left out" >&2
  fi
done
for t in wrk nginx redis-benchmark redis-server haproxy strace; do
  path=$(PATH="$PATH:/usr/sbin:/sbin" command -v "$t" || true)
  if [ -z "$path" ]; then
    echo "bench-kit: $t not installed; left out" >&2
    continue
  fi
  cp "$path" "$kit/tools/real/$t"
  # The shared libraries it loads, except glibc's own.
  ldd "$path" | awk '/=> \// {print $3}' \
    | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' \
    | while read -r lib; do cp -L "$lib" "$kit/tools/lib/"; done
  cat > "$kit/tools/$t" <<WRAP
#!/bin/sh
d=\$(dirname "\$0")
LD_LIBRARY_PATH="\$d/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$d/real/$t" "\$@"
WRAP
  chmod +x "$kit/tools/$t"
done
du -sh "$kit"
