#!/usr/bin/env bash
# Two commits side by side, in one run, on the same warm files:
#
#   benches/compare-commits.sh OLD NEW [ROUNDS]     (default 5 rounds)
#
# Builds `custos` (release profile) at OLD and at NEW from clean checkouts
# (git worktrees under the work directory; one shared target directory, so
# the dependencies are built once), then times, alternating OLD and NEW in
# each round and rotating which goes first:
#
#   hash-1g     custos hash of a 1 GiB file (SHA-256)
#   hash-four   custos hash of four 256 MiB files at once (one process)
#   sm3-1g      custos hash --algo sm3 of the 1 GiB file
#
# and prints each case's median wall time and throughput for both commits
# and the ratio NEW/OLD of their throughputs (above 1: NEW is faster),
# with the machine they ran on (benches/machine.sh). A ratio within a few
# per cent of 1 is noise on a shared machine; run it on an idle one.
#
# Needs git, GNU time (for the peak RSS) and about 2 GiB of files under
# target/compare-commits (CUSTOS_BENCH_DIR puts them elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

[ $# -ge 2 ] || { echo "usage: benches/compare-commits.sh OLD NEW [ROUNDS]" >&2; exit 2; }
OLD_REV=$(git rev-parse --verify --quiet "$1^{commit}") || { echo "compare-commits: $1 is not a commit" >&2; exit 2; }
NEW_REV=$(git rev-parse --verify --quiet "$2^{commit}") || { echo "compare-commits: $2 is not a commit" >&2; exit 2; }
ROUNDS=${3:-5}
case $ROUNDS in ''|*[!0-9]*|0) echo "compare-commits: ROUNDS must be a positive number" >&2; exit 2 ;; esac
WORK=${CUSTOS_BENCH_DIR:-$PWD/target/compare-commits}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "compare-commits: GNU time is needed at $TIME (apt-get install time)" >&2; exit 2; }

mkdir -p "$WORK/bin"
REPO=$PWD
# build NAME REV: $WORK/bin/custos-NAME, the release binary at REV.
build() {
    local name=$1 rev=$2 tree="$WORK/tree-$1"
    if [ -x "$WORK/bin/custos-$name" ] && [ "$(cat "$WORK/bin/custos-$name.rev" 2>/dev/null)" = "$rev" ]; then
        return
    fi
    git -C "$REPO" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
    git -C "$REPO" worktree add --quiet --detach "$tree" "$rev"
    echo "compare-commits: building $name (${rev:0:10}) ..." >&2
    (cd "$tree" && CARGO_TARGET_DIR="$WORK/target" cargo build --release --quiet -p custos-cli --bin custos)
    cp "$WORK/target/release/custos" "$WORK/bin/custos-$name"
    echo "$rev" > "$WORK/bin/custos-$name.rev"
    git -C "$REPO" worktree remove --force "$tree"
}
build old "$OLD_REV"
build new "$NEW_REV"
OLD_BIN=$WORK/bin/custos-old
NEW_BIN=$WORK/bin/custos-new

bench_file "$WORK" one-1g.bin 1024
for i in 1 2 3 4; do bench_file "$WORK" "four-$i.bin" 256; done
ONE=$WORK/one-1g.bin
FOUR=("$WORK"/four-{1,2,3,4}.bin)

# Both commits must agree on every digest before any time counts.
cat "$ONE" "${FOUR[@]}" > /dev/null
for algo in sha256 sm3; do
    cmp <("$OLD_BIN" hash --algo "$algo" "$ONE" "${FOUR[@]}") <("$NEW_BIN" hash --algo "$algo" "$ONE" "${FOUR[@]}") \
        || { echo "compare-commits: the two commits print different $algo digests" >&2; exit 1; }
done

RES=$WORK/results
rm -rf "$RES"
mkdir -p "$RES"
# case NAME WHICH: one timing of case NAME with the WHICH (old/new) binary.
run_case() {
    local bin=$WORK/bin/custos-$2
    case $1 in
        hash-1g) bench_measure "$RES" "$1-$2" "$bin" hash "$ONE" ;;
        hash-four) bench_measure "$RES" "$1-$2" "$bin" hash "${FOUR[@]}" ;;
        sm3-1g) bench_measure "$RES" "$1-$2" "$bin" hash --algo sm3 "$ONE" ;;
    esac
}

CASES=(hash-1g hash-four sm3-1g)
for ((r = 0; r < ROUNDS; r++)); do
    for c in "${CASES[@]}"; do
        if (( r % 2 == 0 )); then order=(old new); else order=(new old); fi
        for w in "${order[@]}"; do run_case "$c" "$w"; done
    done
done

peak() { awk '{ if ($2 > m) m = $2 } END { print m }'; }

benches/machine.sh
echo "old ${OLD_REV:0:10} $(git log -1 --format=%s "$OLD_REV" | cut -c1-60)"
echo "new ${NEW_REV:0:10} $(git log -1 --format=%s "$NEW_REV" | cut -c1-60)"
echo "medians of $ROUNDS rounds (wall time, throughput, peak RSS); ratio = new/old throughput"
printf '%-10s %10s %10s %8s %10s %10s %8s %7s\n' case old-s old-MB/s old-MiB new-s new-MB/s new-MiB ratio
for c in "${CASES[@]}"; do
    bytes=$(( 1024 * 1024 * 1024 ))
    o=$(cut -d' ' -f1 "$RES/$c-old" | bench_median)
    n=$(cut -d' ' -f1 "$RES/$c-new" | bench_median)
    om=$(peak < "$RES/$c-old")
    nm=$(peak < "$RES/$c-new")
    printf '%-10s %10.3f %10.0f %8.0f %10.3f %10.0f %8.0f %7.2f\n' "$c" \
        "$o" "$(echo "$bytes / $o / 1000000" | bc -l)" "$(echo "$om / 1024" | bc -l)" \
        "$n" "$(echo "$bytes / $n / 1000000" | bc -l)" "$(echo "$nm / 1024" | bc -l)" \
        "$(echo "$o / $n" | bc -l)"
done
