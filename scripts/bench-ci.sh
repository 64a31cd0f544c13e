#!/usr/bin/env bash
# CI latency on a real Buildbot (loopback): time from the try push to the build request on
# the master, and from the last job's end to Autoland's transition. Prints a table per poll
# interval. Usage: scripts/bench-ci.sh [rounds]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOLAND_VENV="$(scripts/python-env.sh)"
export AUTOLAND_VENV
for poll in 500 100; do
  BENCH_ROUNDS="${1:-10}" BENCH_POLL_MS="$poll" cargo test --quiet --test buildbot \
    latency_benchmark -- --ignored --nocapture 2>&1 | grep -E '^(\||Buildbot latency)'
done
