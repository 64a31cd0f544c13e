#!/usr/bin/env bash
# Runs the landing gate's service benchmark (benches/gate_service.rs, release build) and
# prints, in markdown, the machine it ran on and the table: one backlog of requests (some
# broken, some interacting pairs) through gate = off, serial and speculative on real git
# repositories with the built-in CI runners; landings per minute, CI runs per landing,
# time to land, and red tips (every tip central had, run through the same tests).
#
# Usage: scripts/bench-gate-service.sh     (about 5 min plus the build)
# Environment: everything benches/gate_service.rs reads (BENCH_REQUESTS, BENCH_BROKEN,
# BENCH_PAIRS, BENCH_CI_MS, BENCH_RUNNERS, BENCH_WINDOW, BENCH_BATCH, BENCH_SEED,
# BENCH_STRATEGIES). Full output: target/bench-gate-service.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
log=target/bench-gate-service.log

cargo bench --bench gate_service --no-run >&2

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running the gate service benchmark; log: $log" >&2
start=$(date +%s)
cargo bench --bench gate_service >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    exit 1
}
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## The landing gate in the service"
echo
echo "- date: $started (start; \`date -u\`)"
machine_lines
echo "- $(git --version)"
echo "- load average (1, 5, 15 min): $load_before before, $load_after after; the run took ${elapsed} s"
grep -E '^backlog:' "$log" | sed 's/^/- /'
echo
sed -n '/<!-- gate-service-bench -->/,/<!-- \/gate-service-bench -->/p' "$log" | grep -v '^<!--'
