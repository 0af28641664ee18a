#!/usr/bin/env bash
# Custos's ingest pipeline against the usual tools, in one run, alternating,
# on the same warm 1 GiB file:
#
#   benches/compare-upload.sh [ROUNDS]        (default 3)
#
#   S3:    custos (crates/custos-ingest/examples/upload.rs: read once, hash,
#          multipart upload with SHA-256 checksums, 16 MiB parts, 3 in
#          flight) against `aws s3 cp` (awscli from PyPI, its defaults: 8 MiB
#          parts, 10 threads), both to the same local Garage node;
#   local: custos ingest into the local filesystem store (read, hash and
#          write overlapping) against `openssl dgst -sha256` (hash only).
#
# Then the memory check: one 4 GiB segment (a sparse file) ingested into
# Garage and into the local store, peak resident size from GNU time.
#
# Prints medians, ratios and peak RSS. Targets: S3 at least as fast as
# `aws s3 cp` (ratio >= 1.0); local ingest >= 0.8x openssl's hash-only
# throughput; peak RSS <= 64 MiB for the 4 GiB segment.
#
# Starts its own Garage node (the `garage` binary, as installed by
# scripts/install-deps) on free loopback ports under target/upload-bench
# (CUSTOS_BENCH_DIR to put it elsewhere; about 6 GiB free needed) and stops
# it on exit. The machine should be otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
WORK=${CUSTOS_BENCH_DIR:-$PWD/target/upload-bench}
TIME=/usr/bin/time

GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
[ -x "$GARAGE" ] || { echo "compare-upload: garage is needed (scripts/install-deps)" >&2; exit 2; }
AWS=$(command -v aws || true)
[ -n "$AWS" ] || { echo "compare-upload: the aws CLI is needed (pip install awscli)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "compare-upload: openssl is needed" >&2; exit 2; }
[ -x "$TIME" ] || { echo "compare-upload: GNU time is needed at $TIME (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet -p custos-ingest --example upload
UPLOAD=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/upload

mkdir -p "$WORK"
DATA=$WORK/segment-1g.bin
if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" -ne 1073741824 ]; then
    { openssl enc -aes-128-ctr -nosalt -pass pass:custos-upload -in /dev/zero 2>/dev/null || true; } \
        | head -c 1073741824 > "$DATA"
fi
cat "$DATA" > /dev/null

# --- a Garage node of our own -------------------------------------------------
G=$WORK/garage
rm -rf "$G"
mkdir -p "$G"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(free_port); RPC_PORT=$(free_port); ADMIN_PORT=$(free_port)
cat > "$G/garage.toml" <<EOF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF
garage() { RUST_LOG=warn "$GARAGE" -c "$G/garage.toml" "$@"; }
RUST_LOG=warn "$GARAGE" -c "$G/garage.toml" server > "$G/garage.log" 2>&1 &
GARAGE_PID=$!
trap 'kill $GARAGE_PID 2>/dev/null || true; wait $GARAGE_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do garage status >/dev/null 2>&1 && break; sleep 0.2; done
NODE=$(garage node id -q | cut -d@ -f1)
garage layout assign -z dc1 -c 10G "$NODE" > /dev/null
garage layout apply --version 1 > /dev/null
KEY_ID=GK$(openssl rand -hex 12)
KEY_SECRET=$(openssl rand -hex 32)
for _ in $(seq 1 50); do garage key import --yes -n bench "$KEY_ID" "$KEY_SECRET" >/dev/null 2>&1 && break; sleep 0.2; done
BUCKET=custos-bench
for _ in $(seq 1 50); do garage bucket create "$BUCKET" >/dev/null 2>&1 && break; sleep 0.2; done
garage bucket allow --read --write --owner "$BUCKET" --key "$KEY_ID" > /dev/null

export AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$KEY_SECRET
export AWS_REGION=garage AWS_DEFAULT_REGION=garage
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
for _ in $(seq 1 100); do "$AWS" s3 ls "s3://$BUCKET" >/dev/null 2>&1 && break; sleep 0.2; done

RES=$WORK/results
rm -rf "$RES"
mkdir -p "$RES"
# measure NAME CMD...: append "seconds max_rss_kib" to $RES/NAME.
measure() {
    local name=$1 start end; shift
    start=$(date +%s.%N)
    "$TIME" -f '%M' -o "$RES/.last" "$@" > "$RES/.out"
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc -l) $(cat "$RES/.last")" >> "$RES/$name"
}

LOCAL=$WORK/objects
run_case() { # CASE ROUND
    case $1 in
        custos-s3)
            measure custos-s3 "$UPLOAD" --url "s3://$BUCKET" --key "custos/$2.bin" "$DATA"
            "$AWS" s3 rm --quiet "s3://$BUCKET/custos/$2.bin" ;;
        aws-s3)
            measure aws-s3 "$AWS" s3 cp --quiet "$DATA" "s3://$BUCKET/aws/$2.bin"
            "$AWS" s3 rm --quiet "s3://$BUCKET/aws/$2.bin" ;;
        custos-local)
            rm -rf "$LOCAL"
            measure custos-local "$UPLOAD" --url "file://$LOCAL" --key "custos/$2.bin" "$DATA"
            rm -rf "$LOCAL" ;;
        openssl)
            measure openssl openssl dgst -sha256 "$DATA" ;;
    esac
}

CASES=(custos-s3 aws-s3 custos-local openssl)
for r in $(seq 1 "$ROUNDS"); do
    n=${#CASES[@]}
    for k in $(seq 0 $(( n - 1 ))); do
        run_case "${CASES[$(( (k + r) % n ))]}" "$r"
    done
    echo "compare-upload: round $r of $ROUNDS done" >&2
done

# --- the memory check: one 4 GiB segment ---------------------------------------
BIG=$WORK/segment-4g.bin
rm -f "$BIG"
truncate -s 4G "$BIG"
measure big-s3 "$UPLOAD" --url "s3://$BUCKET" --key custos/big.bin "$BIG"
"$AWS" s3 rm --quiet "s3://$BUCKET/custos/big.bin"
rm -rf "$LOCAL"
measure big-local "$UPLOAD" --url "file://$LOCAL" --key custos/big.bin "$BIG"
rm -rf "$LOCAL" "$BIG"

median() { awk '{print $1}' "$1" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
max_rss() { awk 'BEGIN{m=0} {if ($2>m) m=$2} END {print m}' "$1"; }

echo
echo "1 GiB per case, $ROUNDS rounds, $(nproc) cores"
printf '%-40s %10s %10s %14s\n' case "median s" "MB/s" "peak RSS KiB"
declare -A TPUT
for c in custos-s3 aws-s3 custos-local openssl big-s3 big-local; do
    s=$(median "$RES/$c")
    bytes=1073741824
    case $c in big-*) bytes=4294967296 ;; esac
    TPUT[$c]=$(echo "$bytes / $s / 1000000" | bc -l)
    case $c in
        custos-s3) label="custos ingest -> Garage (S3)" ;;
        aws-s3) label="aws s3 cp -> Garage (S3)" ;;
        custos-local) label="custos ingest -> local store" ;;
        openssl) label="openssl dgst -sha256 (hash only)" ;;
        big-s3) label="custos ingest 4 GiB -> Garage" ;;
        big-local) label="custos ingest 4 GiB -> local store" ;;
    esac
    printf '%-40s %10.3f %10.0f %14d\n' "$label" "$s" "${TPUT[$c]}" "$(max_rss "$RES/$c")"
done
echo
printf 'custos / aws s3 cp (S3 upload):          %.2fx  (target >= 1.0)\n' "$(echo "${TPUT[custos-s3]} / ${TPUT[aws-s3]}" | bc -l)"
printf 'custos local ingest / openssl hash-only: %.2fx  (target >= 0.8)\n' "$(echo "${TPUT[custos-local]} / ${TPUT[openssl]}" | bc -l)"
printf 'peak RSS, 4 GiB segment: S3 %d KiB, local %d KiB  (target <= 65536)\n' "$(max_rss "$RES/big-s3")" "$(max_rss "$RES/big-local")"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
benches/machine.sh
