#!/bin/sh
# The landing benchmark's baseline: the git commands Autoland runs for a one-patch try-only
# landing, run by a plain shell script on a warm clone and a warm bare CI mirror, with the
# same arguments, settings (-c ...) and environment. Prints each landing's wall time and
# machine-readable lines (BASELINE_*) that benches/landing.rs reads.
#
# Usage: scripts/bench-baseline.sh CENTRAL_GIT TRY_GIT WORK_DIR [RUNS]
#   CENTRAL_GIT  bare repository whose `main` the patches apply on (never modified)
#   TRY_GIT      bare repository pushed to (refs/heads/autoland/baseline-*)
#   WORK_DIR     scratch directory: the clone, the CI mirror, patches. A new one gets a
#                cold round first (clone, mirror, one landing, timed apart); one left by an
#                earlier call is reused warm, so the benchmark can interleave single
#                landings with Autoland's (RUNS=0 then RUNS=1, RUNS=1...).
#   RUNS         measured warm landings (default 10; 0: only prepare WORK_DIR)
#
# The commands, in Autoland's order (RUST_LOG=autoland=debug shows Autoland's own):
#   working copy:  rev-parse --is-inside-work-tree; fetch; checkout --force --detach;
#                  reset --hard; clean -ffdxq; rev-parse HEAD; apply --index; commit -F;
#                  rev-parse HEAD; rev-parse HEAD; push --force
#   CI runner:     fetch into the bare mirror; in the runner's reused worktree
#                  checkout --force --detach; clean -ffdxq; (sh -c true in it). The first landing
#                  makes the worktree instead (worktree prune; worktree add).
set -eu

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 CENTRAL_GIT TRY_GIT WORK_DIR [RUNS]" >&2
    exit 2
fi
central=$(cd "$1" && pwd)
try_repo=$(cd "$2" && pwd)
work=$3
runs=${4:-10}
case $runs in
    '' | *[!0-9]*) echo "RUNS must be a number, not '$runs'" >&2; exit 2 ;;
esac

fresh=false
if [ ! -f "$work/.baseline-ready" ]; then
    fresh=true
    rm -rf "$work"
fi
mkdir -p "$work/tmp" "$work/logs" "$work/ci" "$work/patches"
work=$(cd "$work" && pwd)
clone=$work/work/central
mirror=$work/ci/try.git

# What Autoland's command runner sets for every VCS command.
export GIT_TERMINAL_PROMPT=0 GIT_EDITOR=true HGPLAIN=1 LC_ALL=C
committer_name=Autoland
committer_email=autoland@localhost

g() {
    git -c core.pager=cat -c commit.gpgsign=false -c gc.auto=0 -c advice.detachedHead=false "$@"
}

# Working-copy commands carry the committer identity (Autoland's git_in does).
gw() {
    GIT_COMMITTER_NAME=$committer_name GIT_COMMITTER_EMAIL=$committer_email g "$@"
}

now_ns() {
    date +%s%N
}

# One patch per landing, made before any timing: the last line of one of the last files of
# the tree changes (the benchmark's own patches change files from the middle of the tree).
# Patch 0 is for the cold round. Every landing starts again from central's tip, so the
# same patches apply in every call.
git -C "$central" ls-tree -r --name-only main | tail -n "$((runs + 1))" >"$work/patches/files"
i=0
while IFS= read -r file; do
    git -C "$central" show "main:$file" >"$work/patches/old"
    sed '$ s/$/, changed by the baseline/' "$work/patches/old" >"$work/patches/new"
    diff -u --label "a/$file" --label "b/$file" "$work/patches/old" "$work/patches/new" \
        >"$work/patches/$i.patch" || [ $? -eq 1 ]
    i=$((i + 1))
done <"$work/patches/files"
[ "$i" -eq "$((runs + 1))" ] || { echo "central has too few files for $runs runs" >&2; exit 1; }

# One try-only landing of patch number $1: what the pusher, then the CI runner, run.
land() {
    n=$1
    uid=baseline-$$-$n
    try_ref=refs/heads/autoland/$uid

    # Pusher: warm working copy to the tip, apply, commit, push to try.
    cd "$clone"
    gw rev-parse --is-inside-work-tree >/dev/null
    gw fetch --quiet --no-tags -- "$central" "+refs/heads/main:refs/remotes/origin/main"
    gw checkout --quiet --force --detach refs/remotes/origin/main
    gw reset --quiet --hard refs/remotes/origin/main
    gw clean -ffdxq
    gw rev-parse HEAD >/dev/null
    cp "$work/patches/$n.patch" "$work/tmp/patch-$n"
    gw apply --index --whitespace=nowarn -p1 -- "$work/tmp/patch-$n"
    rm -f "$work/tmp/patch-$n"
    printf 'Baseline landing %s\n\nAutoland-Request: %s\n' "$n" "$uid" >"$work/tmp/message-$n"
    GIT_AUTHOR_NAME=Alice GIT_AUTHOR_EMAIL=alice@example.com \
        gw commit --quiet --no-verify --cleanup=verbatim -F "$work/tmp/message-$n" --allow-empty
    rm -f "$work/tmp/message-$n"
    gw rev-parse HEAD >/dev/null
    revision=$(gw rev-parse HEAD)
    gw push --quiet --porcelain --force -- "$try_repo" "HEAD:$try_ref" >/dev/null

    # CI runner: fetch the pushed ref into the bare mirror, move the runner's worktree
    # (kept from run to run) to the revision, the CI command (`true`).
    cd "$mirror"
    g fetch --quiet --no-tags -- "$try_repo" "+$try_ref:$try_ref"
    checkout=$work/ci/try-ci-runner
    if [ -f "$checkout/.git" ]; then
        (cd "$checkout" && g checkout --quiet --force --detach "$revision" && g clean -ffdxq)
    else
        g worktree prune
        g worktree add --quiet --force --detach "$checkout" "$revision"
    fi
    (cd "$checkout" && sh -c true) >"$work/logs/ci-run-$n.log" 2>&1
}

ms_between() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'
}

echo "baseline: central=$central try=$try_repo work=$work runs=$runs"

# Cold round: what Autoland does on its first landing (clone without checkout, new mirror).
if $fresh; then
    start=$(now_ns)
    mkdir -p "$work/work"
    cd "$work/work"
    gw clone --quiet --no-checkout -- "$central" "$clone"
    mkdir -p "$mirror"
    cd "$mirror"
    g init --quiet --bare
    land 0
    end=$(now_ns)
    cold=$(ms_between "$start" "$end")
    touch "$work/.baseline-ready"
    echo "baseline cold round (clone, mirror, first landing): $cold ms"
    echo "BASELINE_COLD_MS $cold"
fi

times=""
n=1
while [ "$n" -le "$runs" ]; do
    start=$(now_ns)
    land "$n"
    end=$(now_ns)
    t=$(ms_between "$start" "$end")
    echo "baseline run $n: $t ms"
    times="$times $t"
    n=$((n + 1))
done

echo "BASELINE_RUNS_MS$times"
echo "BASELINE_COMMANDS 14"
[ "$runs" -gt 0 ] || exit 0
echo "$times" | tr ' ' '\n' | grep . | sort -n | awk '
    { v[NR] = $1 }
    END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "baseline: median %.1f ms, min %.1f ms, max %.1f ms over %d runs\n", m, v[1], v[NR], NR
    }'
