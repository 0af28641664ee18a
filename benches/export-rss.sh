#!/usr/bin/env bash
# Peak memory of `custos export` for one big segment: the bundle must stream
# (DESIGN.md: a 10 GiB case must not need 10 GiB of memory).
#
#   benches/export-rss.sh [GIB]        (default 2)
#
# Writes GIB GiB of incompressible footage (AES-CTR keystream) as one clip of
# a directory recorder, ingests it with `custos dock ingest` into the local
# object store and the in-process ledger, finds its segment id through
# `custos ledger serve` (GET /v1/segments with an auditor token), then runs
# the in-process export under `/usr/bin/time -v` and prints its peak RSS
# ("Maximum resident set size"), wall time and the bundle's size; the bundle
# is checked with `custos verify bundle`. Needs about 3 x GIB GiB of disk
# under target/export-rss (CUSTOS_BENCH_DIR puts it elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

GIB=${1:-2}
WORK=${CUSTOS_BENCH_DIR:-$PWD/target/export-rss}
PORT=${CUSTOS_BENCH_PORT:-18712}

for tool in openssl curl python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "export-rss: $tool is needed" >&2; exit 2; }
done

cargo build --release --quiet --bin custos
CUSTOS=${CARGO_TARGET_DIR:-$PWD/target}/release/custos

rm -rf "$WORK"
mkdir -p "$WORK/keys" "$WORK/rec/DCIM/100MEDIA"
clip=$WORK/rec/DCIM/100MEDIA/SIM0001_100201_20240501080000_0001.MP4
{ openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:custos-export-rss -in /dev/zero 2>/dev/null || true; } \
    | head -c $(( GIB * 1024 * 1024 * 1024 )) > "$clip"
[ "$(stat -c %s "$clip")" -eq $(( GIB * 1024 * 1024 * 1024 )) ] \
    || { echo "export-rss: could not write $clip" >&2; exit 1; }

"$CUSTOS" keygen --out "$WORK/keys/dock-01.key" >/dev/null 2>&1
"$CUSTOS" keygen --out "$WORK/keys/ledger.key" >/dev/null 2>&1
cat > "$WORK/custos.toml" <<EOF
[storage]
url = "file://$WORK/objects"
[ledger]
listen = "127.0.0.1:$PORT"
data_dir = "./ledger"
origin = "bench.custos/export-rss"
key_file = "./keys/ledger.key"
[retention]
sweep_interval = "off"
[dock]
id = "dock-01"
key_file = "./keys/dock-01.key"
data_dir = "./dock"
profiles_dir = "$PWD/firmware-profiles"
wipe = "never"
usb = false
EOF

RUST_LOG=warn "$CUSTOS" dock ingest --config "$WORK/custos.toml" --source "$WORK/rec" \
    --profile simulated >/dev/null 2>"$WORK/ingest.err" \
    || { cat "$WORK/ingest.err" >&2; exit 1; }
auditor=$("$CUSTOS" token create --config "$WORK/custos.toml" --role auditor --name bench 2>/dev/null | tail -n1)
RUST_LOG=warn "$CUSTOS" ledger serve --config "$WORK/custos.toml" > "$WORK/serve.out" 2>/dev/null &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
segment=$(curl -sf -H "Authorization: Bearer $auditor" "http://127.0.0.1:$PORT/v1/segments" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["segments"][0]["segment_id"])')
kill -TERM $serve
wait $serve || true
trap - EXIT

start=$(date +%s.%N)
/usr/bin/time -v -o "$WORK/export.time" \
    "$CUSTOS" export --config "$WORK/custos.toml" --segment "$segment" --out "$WORK/export.tar" \
    > "$WORK/export.out"
end=$(date +%s.%N)
"$CUSTOS" verify bundle "$WORK/export.tar" --ledger-key "$WORK/keys/ledger.key.pub" > "$WORK/verify.out"

echo "export-rss: $(awk -F': ' '/Command being timed/ {print $2}' "$WORK/export.time")"
rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/export.time")
python3 - "$GIB" "$rss_kib" "$start" "$end" "$(stat -c %s "$WORK/export.tar")" <<'PY'
import sys
gib, rss_kib, start, end, size = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
secs = end - start
print(f"export-rss: one {gib} GiB segment, bundle {size / 2**30:.2f} GiB, verified")
print(f"  custos export peak RSS: {rss_kib / 1024:.1f} MiB ({rss_kib / 1024 / (gib * 1024) * 100:.2f}% of the footage)")
print(f"  wall time: {secs:.2f} s ({gib * 1024 / secs:.0f} MiB/s)")
PY
rm -rf "$WORK/objects" "$WORK/rec" "$WORK/export.tar"
benches/machine.sh
