#!/usr/bin/env bash
# `custos hash` against `openssl dgst -sha256` and `sha256sum`, in one run,
# alternating, on the same warm files:
#
#   benches/compare-hash.sh [ROUNDS]          (default 5)
#
#   one file:   a 1 GiB file, one process each;
#   four files: four 256 MiB files at once, as one `custos hash a b c d`
#               against four `openssl dgst` (and four `sha256sum`)
#               processes in parallel.
#
# Each round runs every tool once per case, the order rotating from round to
# round so that none always goes first. Prints the median wall time, the
# throughput, the peak resident size (GNU time's "Maximum resident set
# size"; for the parallel cases the largest single process) and the ratios
# the targets are about:
#
#   custos / openssl, one file                       >= 1.0
#   custos four files / custos one file (throughput) >= 1.8 on two cores
#
# Needs about 2 GiB under target/hash-bench (set CUSTOS_BENCH_DIR to put it
# elsewhere). The machine should be otherwise idle: the figures are wall
# times.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

ROUNDS=${1:-5}
WORK=${CUSTOS_BENCH_DIR:-$PWD/target/hash-bench}
TIME=/usr/bin/time

command -v openssl >/dev/null || { echo "compare-hash: openssl is needed" >&2; exit 2; }
command -v sha256sum >/dev/null || { echo "compare-hash: sha256sum is needed" >&2; exit 2; }
[ -x "$TIME" ] || { echo "compare-hash: GNU time is needed at $TIME (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet -p custos-cli --bin custos
CUSTOS=${CARGO_TARGET_DIR:-$PWD/target}/release/custos

mkdir -p "$WORK"
bench_file "$WORK" one-1g.bin 1024
for i in 1 2 3 4; do bench_file "$WORK" "four-$i.bin" 256; done
ONE=$WORK/one-1g.bin
FOUR=("$WORK"/four-{1,2,3,4}.bin)
# Warm the page cache, and check that all three tools agree.
want=$(sha256sum "$ONE" | cut -d' ' -f1)
got=$("$CUSTOS" hash "$ONE" | cut -d' ' -f1)
ossl=$(openssl dgst -sha256 -r "$ONE" | cut -d' ' -f1)
[ "$want" = "$got" ] && [ "$want" = "$ossl" ] || { echo "compare-hash: digests disagree" >&2; exit 1; }
cat "${FOUR[@]}" > /dev/null
cmp <("$CUSTOS" hash "${FOUR[@]}") <(sha256sum "${FOUR[@]}") \
    || { echo "compare-hash: custos hash output differs from sha256sum" >&2; exit 1; }

RES=$WORK/results
rm -rf "$RES"
mkdir -p "$RES"

# The parallel cases: every process timed by GNU time, the wall time of the
# whole group by bash; the peak is the largest single process.
parallel() {
    local name=$1 tool=$2; shift 2
    local start end peak=0 f i=0
    start=$(date +%s.%N)
    for f in "$@"; do
        case $tool in
            openssl) "$TIME" -f '%M' -o "$RES/.p$i" openssl dgst -sha256 "$f" > /dev/null & ;;
            sha256sum) "$TIME" -f '%M' -o "$RES/.p$i" sha256sum "$f" > /dev/null & ;;
        esac
        i=$(( i + 1 ))
    done
    wait
    end=$(date +%s.%N)
    for f in "$RES"/.p*; do
        m=$(cat "$f"); [ "$m" -gt "$peak" ] && peak=$m
    done
    rm -f "$RES"/.p*
    echo "$(echo "$end - $start" | bc -l) $peak" >> "$RES/$name"
}

run_case() {
    case $1 in
        custos-1) bench_measure "$RES" custos-1 "$CUSTOS" hash "$ONE" ;;
        openssl-1) bench_measure "$RES" openssl-1 openssl dgst -sha256 "$ONE" ;;
        sha256sum-1) bench_measure "$RES" sha256sum-1 sha256sum "$ONE" ;;
        custos-4) bench_measure "$RES" custos-4 "$CUSTOS" hash "${FOUR[@]}" ;;
        openssl-4) parallel openssl-4 openssl "${FOUR[@]}" ;;
        sha256sum-4) parallel sha256sum-4 sha256sum "${FOUR[@]}" ;;
    esac
}

CASES=(custos-1 openssl-1 sha256sum-1 custos-4 openssl-4 sha256sum-4)
for r in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round.
    n=${#CASES[@]}
    for k in $(seq 0 $(( n - 1 ))); do
        run_case "${CASES[$(( (k + r) % n ))]}"
    done
    echo "compare-hash: round $r of $ROUNDS done" >&2
done

median() { # FILE COLUMN
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
max_col() { awk -v c="$2" 'BEGIN{m=0} {if ($c>m) m=$c} END {print m}' "$1"; }

GIB=1073741824
echo
echo "bytes per case: 1 GiB (one file: 1 x 1 GiB; four files: 4 x 256 MiB), $ROUNDS rounds, $(nproc) cores"
printf '%-28s %10s %12s %14s\n' case "median s" "MB/s" "peak RSS KiB"
declare -A TPUT
for c in "${CASES[@]}"; do
    s=$(median "$RES/$c" 1)
    rss=$(max_col "$RES/$c" 2)
    t=$(echo "$GIB / $s / 1000000" | bc -l)
    TPUT[$c]=$t
    case $c in
        custos-1) label="custos hash, 1 file" ;;
        openssl-1) label="openssl dgst, 1 file" ;;
        sha256sum-1) label="sha256sum, 1 file" ;;
        custos-4) label="custos hash a b c d" ;;
        openssl-4) label="4 x openssl dgst, parallel" ;;
        sha256sum-4) label="4 x sha256sum, parallel" ;;
    esac
    printf '%-28s %10.3f %12.0f %14d\n' "$label" "$s" "$t" "$rss"
done
echo
ratio() { echo "${TPUT[$1]} / ${TPUT[$2]}" | bc -l; }
printf 'custos / openssl, one file:              %.2fx  (target >= 1.0)\n' "$(ratio custos-1 openssl-1)"
printf 'custos / sha256sum, one file:            %.2fx\n' "$(ratio custos-1 sha256sum-1)"
printf 'custos four files / custos one file:     %.2fx  (target >= 1.8 on two cores)\n' "$(ratio custos-4 custos-1)"
printf 'custos / 4 x openssl, four files:        %.2fx\n' "$(ratio custos-4 openssl-4)"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
benches/machine.sh
