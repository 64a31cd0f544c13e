#!/usr/bin/env bash
# Runs the hg landing benchmark (benches/hg_landing.rs, release build) and prints, in
# markdown, the machine it ran on, its load, and the benchmark's tables:
#
#   part 1  the hg commands of one try-only landing, through a command server vs spawning
#           `hg` per command (warm clones, interleaved)
#   part 2  one-patch try-only landings through the service: total vs hg time, overhead %
#
# Usage: scripts/bench-hg.sh [tmpfs|disk]          (default: tmpfs)
#   tmpfs  everything in /dev/shm/autoland-bench-hg (removed afterwards)
#   disk   everything in target/bench-hg, on the machine's disk (slow on this VM's ext4:
#          the CI checkout writes 10,000 files right after deleting 10,000)
# Environment: BENCH_RUNS (landings per mode in part 1 and through the service in part 2,
# default 10), BENCH_PARTS (sequence|service|both), BENCH_POLL_MS (default 50).
# The generated central repository (10,000 files, 5,000 commits; about 40 s) is kept in
# target/bench-hg and reused. Full output: target/bench-hg-<configuration>.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
mode=${1:-tmpfs}
case $mode in
    tmpfs) dir=/dev/shm/autoland-bench-hg ;;
    disk) dir=$PWD/target/bench-hg ;;
    *) echo "usage: $0 [tmpfs|disk]" >&2; exit 2 ;;
esac
cache=$PWD/target/bench-hg
runs=${BENCH_RUNS:-10}
log=target/bench-hg-$mode.log

# Build first, so that compiling does not run next to the measurements.
cargo bench --bench hg_landing --no-run >&2

mkdir -p "$dir" "$cache"
fs=$(df -T "$dir" | awk 'NR == 2 { print $2 " (" $1 ")" }')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running the $mode configuration ($runs landings per mode in $dir, $fs); log: $log" >&2
start=$(date +%s)
BENCH_DIR=$dir BENCH_CACHE=$cache BENCH_RUNS=$runs cargo bench --bench hg_landing >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    exit 1
}
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$mode" = tmpfs ]; then
    # The repositories take memory there; the cached central is copied back in a second.
    rm -rf "$dir"
fi

echo "## hg landing benchmark ($mode: $dir on $fs, $runs landings per mode)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
machine_lines
echo "- $(hg version -q | head -n 1)"
echo "- load average (1, 5, 15 min): $load_before before, $load_after after; the run took ${elapsed} s"
echo
sed -n '/<!-- hg-landing-bench-tables -->/,/<!-- \/hg-landing-bench-tables -->/p' "$log" | grep -v '^<!--'
