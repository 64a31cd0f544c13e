#!/usr/bin/env bash
# Runs the status-under-load benchmark (benches/status_load.rs, release build) and prints,
# in markdown, the machine it ran on, its load, and the benchmark's two tables:
#
#   - the unloaded cost of each store call behind the status (`overview()`), and the
#     open-request list done as 2 queries instead of 1 + one per request
#   - `GET /` (HTML) and `GET /api/status` (JSON) with 1,000 finished and 100 open
#     requests: 1 client, then 100 concurrent keep-alive clients (the Rust load client),
#     then, when `wrk` is installed, `wrk -t2 -c100` as a cross-check
#
# Usage: scripts/bench-status.sh            (about 70 s plus the build)
# Environment: everything benches/status_load.rs reads (BENCH_HISTORY, BENCH_QUEUE,
# BENCH_CLIENTS, BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_UNLOADED_SECONDS,
# BENCH_ENDPOINTS, BENCH_DIR); BENCH_WRK=none skips wrk, BENCH_WRK=/path/to/wrk picks one.
# Full output: target/bench-status.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
log=target/bench-status.log

# Build first, so that compiling does not run next to the measurements.
cargo bench --bench status_load --no-run >&2

case ${BENCH_WRK:-} in
    none) unset BENCH_WRK ;;
    "") if command -v wrk >/dev/null; then export BENCH_WRK=wrk; else
            echo "wrk is not installed (apt-get install -y wrk): Rust client only" >&2
        fi ;;
    *) export BENCH_WRK ;;
esac

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running the status benchmark; log: $log" >&2
start=$(date +%s)
cargo bench --bench status_load >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    exit 1
}
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Status under load"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
machine_lines "(server and load client share them)"
if [ -n "${BENCH_WRK:-}" ]; then echo "- $("$BENCH_WRK" --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"; fi
echo "- load average (1, 5, 15 min): $load_before before, $load_after after; the run took ${elapsed} s"
echo
grep -E '^(database:|one status =|service:|client:)' "$log" | sed 's/^/- /'
echo
sed -n '/<!-- status-bench-breakdown -->/,/<!-- \/status-bench-breakdown -->/p' "$log" | grep -v '^<!--'
echo
sed -n '/<!-- status-bench-table -->/,/<!-- \/status-bench-table -->/p' "$log" | grep -v '^<!--'
