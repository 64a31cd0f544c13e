#!/usr/bin/env bash
# Runs the landing benchmark (benches/landing.rs, release build) and prints, in markdown,
# the machine it ran on and one summary table per configuration:
#
#   tmpfs  repositories, working copies, CI checkouts and the SQLite database in /dev/shm:
#          git is not slowed down by the disk, so Autoland's own share shows best
#   disk   the same in target/bench-landing, on the machine's disk
#
# Usage: scripts/bench.sh [tmpfs|disk|both]          (default: both)
# Environment: BENCH_RUNS (warm landings in the tmpfs run, default 10), BENCH_DISK_RUNS
# (in the disk run, default 5: on a slow disk each landing takes seconds), BENCH_POLL_MS.
# Full output of each run: target/bench-landing-<configuration>.log.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/machine.sh
mode=${1:-both}
case $mode in
    tmpfs | disk | both) ;;
    *) echo "usage: $0 [tmpfs|disk|both]" >&2; exit 2 ;;
esac
tmpfs_dir=/dev/shm/autoland-bench-landing
disk_dir=$PWD/target/bench-landing

# Build first, so that compiling does not run next to the measurements.
cargo bench --bench landing --no-run >&2

describe_machine() {
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    machine_lines
    echo "- $(git --version)"
}

# run LABEL DIR RUNS: one configuration; prints its table.
run() {
    local label=$1 dir=$2 runs=$3
    local log=target/bench-landing-$label.log
    mkdir -p "$dir"
    local fs
    fs=$(df -T "$dir" | awk 'NR == 2 { print $2 " (" $1 ")" }')
    echo "running the $label configuration ($runs warm landings in $dir, $fs); log: $log" >&2
    BENCH_DIR=$dir BENCH_RUNS=$runs cargo bench --bench landing >"$log" 2>&1 || {
        tail -n 30 "$log" >&2
        return 1
    }
    echo "### $label: $dir on $fs, $runs warm landings"
    echo
    sed -n '/<!-- landing-bench-table -->/,/<!-- \/landing-bench-table -->/p' "$log" | grep -v '^<!--'
    echo
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
    echo "## Landing benchmark"
    echo
    describe_machine
    echo
    if [ "$mode" = tmpfs ] || [ "$mode" = both ]; then
        run tmpfs "$tmpfs_dir" "${BENCH_RUNS:-10}"
        # The repositories take memory there; the next run regenerates them in seconds.
        rm -rf "$tmpfs_dir"
    fi
    if [ "$mode" = disk ] || [ "$mode" = both ]; then
        run disk "$disk_dir" "${BENCH_DISK_RUNS:-5}"
    fi
} >"$out"
cat "$out"
