#!/usr/bin/env bash
# The soak (benches/soak.rs, release build): 1,050 mixed requests (7 in 10 land, 1 fails
# on try, 1 does not apply, 1 is cancelled) at an even pace over 630 s through one
# `autoland serve --no-pushers` and two `autoland worker` processes on PostgreSQL, 4
# central/try pairs (git). Prints, in markdown, the machine, the outcomes, the latency of
# /api/status (asked 4 times a second) and the samples of each process's memory, file
# descriptors and child processes and of the database's connections.
#
# Needs PostgreSQL on 127.0.0.1:5432, user postgres, trust authentication (a database of
# its own is created).
#
# Usage: scripts/bench-soak.sh        (about 12 min plus the build)
# Environment: BENCH_REQUESTS, BENCH_SECONDS, BENCH_REPOS, BENCH_CI, BENCH_SAMPLE_SECONDS.
# Full output: target/bench-soak.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
log=target/bench-soak.log

cargo bench --bench soak --no-run >&2

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running the soak; log: $log" >&2
cargo bench --bench soak >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    exit 1
}
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Soak"
echo
echo "- date: $started (start; \`date -u\`)"
machine_lines
echo "- $(psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT version()' 2>/dev/null | cut -d' ' -f1-2 || echo 'PostgreSQL: version unknown')"
echo "- $(git --version)"
echo "- load average (1, 5, 15 min): $load_before before, $load_after after"
echo
grep -E '^(soak:|landed requests|status:)' "$log" | sed 's/^/- /'
echo
sed -n '/<!-- soak-outcomes -->/,/<!-- \/soak-outcomes -->/p' "$log" | grep -v '^<!--'
echo
sed -n '/<!-- soak-samples -->/,/<!-- \/soak-samples -->/p' "$log" | grep -v '^<!--'
