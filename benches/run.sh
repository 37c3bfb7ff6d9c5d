#!/usr/bin/env bash
# Builds the workspace in release mode, then runs the benchmark runner with
# the given arguments (see docs/benchmarks.md), e.g.
#   benches/run.sh --smoke          # ~1 minute, CI
#   benches/run.sh --strace         # full run, ~20 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
exec target/release/bench "$@"
