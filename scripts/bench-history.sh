#!/usr/bin/env bash
# Does a landing cost more on a longer history? Runs the landing benchmarks (git:
# benches/landing.rs; hg: benches/hg_landing.rs, service part) on repositories of 10,000
# files with SMALL and LARGE commits of history (default 1,000 and 100,000), on tmpfs,
# and prints, in markdown, the machine and one table: the median landing per VCS and
# history, and the ratio of the two.
#
# Usage: scripts/bench-history.sh                 (about 10 min plus the build; the first
#                                                   run also generates the repositories:
#                                                   about 1 min for git, ~10 min for hg)
# Environment: BENCH_RUNS (warm landings per configuration, default 10),
# BENCH_SMALL_COMMITS (1000), BENCH_LARGE_COMMITS (100000).
# The generated repositories are kept: git's in /dev/shm/autoland-bench-history (removed
# afterwards), hg's in target/bench-hg (copied to tmpfs for the run).
# Full output: target/bench-history-<vcs>-<commits>.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
runs=${BENCH_RUNS:-10}
small=${BENCH_SMALL_COMMITS:-1000}
large=${BENCH_LARGE_COMMITS:-100000}
dir=/dev/shm/autoland-bench-history
cache=$PWD/target/bench-hg

# Build first, so that compiling does not run next to the measurements.
cargo bench --bench landing --no-run >&2
cargo bench --bench hg_landing --no-run >&2

# median LOG ROW: the median column of the row starting with ROW in LOG's summary.
median() {
    sed -n '/<!-- [a-z-]*bench-table/,/<!-- \/[a-z-]*bench-table/p' "$1" | grep -F "| $2" |
        head -n 1 | awk -F'|' '{ gsub(/[ ms,]/, "", $3); print $3 }'
}

# bench VCS COMMITS: one configuration; prints "median-total median-vcs".
bench() {
    local vcs=$1 commits=$2
    local log=target/bench-history-$vcs-$commits.log
    echo "running $vcs with $commits commits ($runs landings); log: $log" >&2
    mkdir -p "$dir"
    if [ "$vcs" = git ]; then
        BENCH_DIR=$dir BENCH_COMMITS=$commits BENCH_RUNS=$runs \
            cargo bench --bench landing >"$log" 2>&1 || { tail -n 30 "$log" >&2; return 1; }
        echo "$(median "$log" 'Autoland total') $(median "$log" 'git commands inside Autoland')"
    else
        BENCH_DIR=$dir/hg BENCH_CACHE=$cache BENCH_COMMITS=$commits BENCH_RUNS=$runs \
            BENCH_PARTS=service cargo bench --bench hg_landing >"$log" 2>&1 ||
            { tail -n 30 "$log" >&2; return 1; }
        echo "$(median "$log" 'Autoland total') $(median "$log" 'hg commands inside Autoland')"
    fi
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
rows=""
for vcs in git hg; do
    read -r small_total small_vcs <<<"$(bench "$vcs" "$small")"
    read -r large_total large_vcs <<<"$(bench "$vcs" "$large")"
    ratio=$(awk -v a="$small_total" -v b="$large_total" 'BEGIN { printf "%.2f", b / a }')
    rows="$rows| $vcs | $small_total | $large_total | $ratio | $small_vcs | $large_vcs |"$'\n'
    rm -rf "$dir"
done
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Landing cost and history length"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
machine_lines
echo "- $(git --version); $(hg version -q | head -n 1)"
echo "- tmpfs ($dir), $runs warm one-file try-only landings per row, 10,000 files"
echo "- load average (1, 5, 15 min): $load_before before, $load_after after; ${elapsed} s"
echo
echo "| VCS | landing, $small commits (median ms) | landing, $large commits (median ms) | ratio | VCS time, $small (ms) | VCS time, $large (ms) |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s' "$rows"
