#!/usr/bin/env bash
# Runs the scale-out benchmark (benches/workers.rs, release build) and prints, in markdown,
# the machine it ran on, its load, and the benchmark's two tables:
#
#   - landings per minute with 1, 2 and 4 `autoland worker` processes (and one
#     `serve --no-pushers`) on one PostgreSQL database, requests spread over 4 central/try
#     pairs, CI command `sleep 0.5`
#   - the time from a request's insertion to its claim by an idle worker, with
#     LISTEN/NOTIFY wake-ups and with polling only (`listen_notify = false`)
#
# Needs PostgreSQL on 127.0.0.1:5432, user postgres, trust authentication (each run creates
# and drops a database of its own).
#
# Usage: scripts/bench-workers.sh            (about 4 min plus the build)
# Environment: everything benches/workers.rs reads (BENCH_PARTS, BENCH_WORKERS,
# BENCH_REQUESTS, BENCH_REPOS, BENCH_CI, BENCH_SAMPLES, BENCH_LATENCY_MODES, BENCH_POLL_MS).
# Full output: target/bench-workers.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
log=target/bench-workers.log

# Build first, so that compiling does not run next to the measurements.
cargo bench --bench workers --no-run >&2

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running the workers benchmark; log: $log" >&2
start=$(date +%s)
cargo bench --bench workers >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    exit 1
}
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Workers on PostgreSQL"
echo
echo "- date: $started (start; \`date -u\`)"
machine_lines
echo "- $(psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT version()' 2>/dev/null | cut -d' ' -f1-2 || echo 'PostgreSQL: version unknown')"
echo "- $(git --version)"
tmp=${TMPDIR:-/tmp}
echo "- repositories and data directories in $tmp: $(df -T "$tmp" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
echo "- load average (1, 5, 15 min): $load_before before, $load_after after; the run took ${elapsed} s"
echo
grep -E '^(throughput:|latency:|[0-9]+ worker\(s\):)' "$log" | sed 's/^/- /'
echo
sed -n '/<!-- workers-bench-throughput -->/,/<!-- \/workers-bench-throughput -->/p' "$log" | grep -v '^<!--'
echo
grep -E '^listen_notify = ' "$log" | grep 'insert -> claim' | sed 's/^/- /'
echo
sed -n '/<!-- workers-bench-latency -->/,/<!-- \/workers-bench-latency -->/p' "$log" | grep -v '^<!--'
echo
grep -E 'the client has the 201' "$log" | sed 's/^/- /'
