#!/usr/bin/env bash
# `custos hash --algo sm3` against `openssl dgst -sm3`, side by side, on the
# same warm file:
#
#   benches/compare-sm3.sh [ROUNDS] [MIB]      (defaults 5 rounds, 1024 MiB)
#
# Each round runs both once, the order alternating from round to round so
# that neither always goes first. Prints the CPU model, the median wall
# time and throughput of each, and the ratio the goal is about:
#
#   custos / openssl (SM3 throughput)   >= 1.0
#
# Then the ingest with SM3 on against the same ingest with SHA-256 only
# (crates/custos-ingest/examples/upload.rs into the local filesystem store
# under the bench directory: put CUSTOS_BENCH_DIR on tmpfs, or the disk's
# fsync decides), in the same alternating rounds:
#
#   ingest SHA-256+SM3 / ingest SHA-256 only (wall time)   reported
#
# `custos hash --algo sm3` is the dock's hashing core with SM3 on: it
# computes SHA-256 too, on another thread when a core is free, as an ingest
# does. Needs MIB MiB under target/hash-bench (CUSTOS_BENCH_DIR to put it
# elsewhere); CUSTOS_BIN=PATH and CUSTOS_UPLOAD_BIN=PATH measure those
# binaries instead of building the release ones. The machine should be otherwise idle: the figures are wall
# times.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
MIB=${2:-1024}
WORK=${CUSTOS_BENCH_DIR:-$PWD/target/hash-bench}

command -v openssl >/dev/null || { echo "compare-sm3: openssl is needed" >&2; exit 2; }
openssl dgst -sm3 /dev/null >/dev/null 2>&1 || { echo "compare-sm3: this openssl has no SM3" >&2; exit 2; }

if [ -n "${CUSTOS_BIN:-}" ]; then
    # A binary built elsewhere (say so when quoting the figure: the
    # release profile's LTO is what the goal is about).
    CUSTOS=$CUSTOS_BIN
else
    cargo build --release --quiet -p custos-cli --bin custos
    CUSTOS=${CARGO_TARGET_DIR:-$PWD/target}/release/custos
fi
if [ -n "${CUSTOS_UPLOAD_BIN:-}" ]; then
    UPLOAD=$CUSTOS_UPLOAD_BIN
else
    cargo build --release --quiet -p custos-ingest --example upload
    UPLOAD=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/upload
fi

mkdir -p "$WORK"
FILE=$WORK/sm3-$MIB.bin
if ! [ -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $(( MIB * 1024 * 1024 )) ]; then
    { openssl enc -aes-128-ctr -nosalt -pass "pass:custos-sm3" -in /dev/zero 2>/dev/null || true; } \
        | head -c $(( MIB * 1024 * 1024 )) > "$FILE"
fi
# Warm the page cache, and check that both agree.
ossl=$(openssl dgst -sm3 -r "$FILE" | cut -d' ' -f1)
got=$("$CUSTOS" hash --algo sm3 "$FILE" | cut -d' ' -f1)
[ "$ossl" = "$got" ] || { echo "compare-sm3: digests disagree ($got vs $ossl)" >&2; exit 1; }

RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT
measure() { # NAME CMD...: append the wall seconds to $RES/NAME
    local name=$1 start end; shift
    start=$(date +%s.%N)
    "$@" > /dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l >> "$RES/$name"
}
STORE=$WORK/sm3-ingest-store
ingest() { # NAME [--sm3]: one ingest of the file into a fresh local store
    rm -rf "$STORE"
    measure "$1" "$UPLOAD" --url "file://$STORE" --key "bench/$1.bin" ${2:-} "$FILE"
    rm -rf "$STORE"
}
for r in $(seq 1 "$ROUNDS"); do
    if [ $(( r % 2 )) -eq 1 ]; then
        measure custos "$CUSTOS" hash --algo sm3 "$FILE"
        measure openssl openssl dgst -sm3 "$FILE"
        ingest ingest-sm3 --sm3
        ingest ingest-sha
    else
        ingest ingest-sha
        ingest ingest-sm3 --sm3
        measure openssl openssl dgst -sm3 "$FILE"
        measure custos "$CUSTOS" hash --algo sm3 "$FILE"
    fi
    echo "compare-sm3: round $r of $ROUNDS done" >&2
done
median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

BYTES=$(( MIB * 1024 * 1024 ))
echo
echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores"
echo "$MIB MiB file, $ROUNDS rounds, $(openssl version)"
printf '%-30s %10s %10s\n' case "median s" "MB/s"
c=$(median "$RES/custos"); o=$(median "$RES/openssl")
printf '%-30s %10.3f %10.0f\n' "custos hash --algo sm3" "$c" "$(echo "$BYTES / $c / 1000000" | bc -l)"
printf '%-30s %10.3f %10.0f\n' "openssl dgst -sm3" "$o" "$(echo "$BYTES / $o / 1000000" | bc -l)"
printf 'custos / openssl (throughput): %.2fx  (goal >= 1.0)\n' "$(echo "$o / $c" | bc -l)"
m=$(median "$RES/ingest-sm3"); h=$(median "$RES/ingest-sha")
printf '%-30s %10.3f %10.0f\n' "ingest, SHA-256 + SM3" "$m" "$(echo "$BYTES / $m / 1000000" | bc -l)"
printf '%-30s %10.3f %10.0f\n' "ingest, SHA-256 only" "$h" "$(echo "$BYTES / $h / 1000000" | bc -l)"
printf 'ingest SHA-256+SM3 / SHA-256 only (wall): %.2fx; SM3 ingest / openssl dgst -sm3 (throughput): %.2fx\n' \
    "$(echo "$m / $h" | bc -l)" "$(echo "$o / $m" | bc -l)"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
benches/machine.sh
