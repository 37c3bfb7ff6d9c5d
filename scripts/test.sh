#!/usr/bin/env bash
# The project's test command: unit, integration and doc tests of every
# crate, then the end-to-end checks with real clients (redis-cli,
# redis-benchmark, wrk, curl) against release builds of the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
if [ -x scripts/e2e.sh ]; then
  ./scripts/e2e.sh
fi
