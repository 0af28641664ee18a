#!/usr/bin/env bash
# Ledger performance on this machine, all on loopback:
#   1. durable appends per second over HTTP with 1, 8 and 64 concurrent
#      clients (each append acknowledged only once fsynced), the ledger
#      publishing its tiles to <data_dir>-tiles meanwhile, and the time from
#      each acknowledgement to the first published checkpoint covering it
#      ("append to publication", p50/p99);
#   2. a fixture of ENTRIES entries (default 1,000,000) bulk-loaded through
#      the internal append API, then start-up time (open + start-up check)
#      and inclusion-proof latency over HTTP at that size.
# Targets (DESIGN/issue 5, 2 cores): >= 5,000 appends/s with 64 clients,
# inclusion proof p99 < 2 ms at 1M entries, start-up < 1 s at 1M entries;
# append to publication p99 < 1.5 s with the default 1 s checkpoint_interval.
#
# Usage: benches/ledger-append.sh            (ENTRIES=100000 for a quick run;
#                                            ROUNDS=5 repeats the 64-client run
#                                            five times and prints the median)
#        WITNESS=1 benches/ledger-append.sh  (the appends run with a witness:
#                                            every checkpoint is submitted to it
#                                            and published with its cosignature)
#        CUSTOS_LEDGER_BATCH_SIGNATURES=true benches/ledger-append.sh
#                                            (batched signature checks; off
#                                            by default, see ARCHITECTURE.md)
# Other processes compete for the 2 cores: run it on a quiet machine and
# look at the load average it prints first.
# Needs about 2 GB of free disk for the 1M fixture (in $TMPDIR).
set -euo pipefail
cd "$(dirname "$0")/.."

ENTRIES=${ENTRIES:-1000000}
ROUNDS=${ROUNDS:-1}
WITNESS=${WITNESS:-0}
WPID=""
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 1; }
cargo build --release -q -p custos-server --bin custos-ledger-bench
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/custos-ledger-bench
WORK=$(mktemp -d "${TMPDIR:-/tmp}/custos-ledger-bench.XXXXXX")
PID=""

cleanup() {
    if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [[ -n "$WPID" ]]; then kill "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_server CONFIG: start `serve` (what `custos ledger serve` runs) and
# set URL from its "listening on URL" line; prints the time to that line.
start_server() {
    local out=$WORK/serve.out t0 t1
    : > "$out"
    t0=$(date +%s%N)
    RUST_LOG=warn "$BIN" serve --config "$1" > "$out" &
    PID=$!
    for _ in $(seq 1 600); do
        if grep -q '^listening on ' "$out"; then break; fi
        sleep 0.01
    done
    t1=$(date +%s%N)
    URL=$(sed -n 's/^listening on //p' "$out")
    [[ -n "$URL" ]] || { echo "server did not start" >&2; exit 1; }
    echo "server process start to listening: $(( (t1 - t0) / 1000000 )) ms"
}

stop_server() {
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

echo "== durable appends over HTTP (machine: $(nproc) cores; $(uptime | sed 's/.*load/load/'))"
"$BIN" setup --dir "$WORK/appends" > /dev/null
if [[ "$WITNESS" == 1 ]]; then
    RUST_LOG=warn "$BIN" witness --dir "$WORK/appends" > "$WORK/witness.out" &
    WPID=$!
    for _ in $(seq 1 600); do grep -q '^listening on ' "$WORK/witness.out" && break; sleep 0.01; done
    echo "with a witness on $(sed -n 's/^listening on //p' "$WORK/witness.out"): each checkpoint published with its cosignature"
fi
start_server "$WORK/appends/custos.toml"
"$BIN" append --url "$URL" --dir "$WORK/appends" --clients 1 --count 2000 --server-pid "$PID"
"$BIN" append --url "$URL" --dir "$WORK/appends" --clients 8 --count 8000 --server-pid "$PID"
for round in $(seq 1 "$ROUNDS"); do
    [[ "$ROUNDS" == 1 ]] || echo "-- round $round of $ROUNDS"
    "$BIN" append --url "$URL" --dir "$WORK/appends" --clients 64 --count 30000 --server-pid "$PID" \
        | tee -a "$WORK/rounds.out"
done
if [[ "$ROUNDS" != 1 ]]; then
    median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
    rate=$(sed -n 's/.*64 clients: .* = \([0-9]*\)\/s;.*/\1/p' "$WORK/rounds.out" | median)
    cpu=$(sed -n 's/.*, server \([0-9]*\) us$/\1/p' "$WORK/rounds.out" | median)
    echo "64 clients, median of $ROUNDS rounds: $rate appends/s, server CPU $cpu us per append"
fi
curl -s "$URL/metrics" | grep -E '^custos_ledger_(batch_size|signature_batch_size)_(sum|count)|^custos_ledger_signature_batches_total' || true
stop_server

echo "== fixture of $ENTRIES entries"
"$BIN" setup --dir "$WORK/big" > /dev/null
"$BIN" bulk-load --config "$WORK/big/custos.toml" --count "$ENTRIES"
du -sh "$WORK/big/ledger" | sed 's/^/sled size: /'
"$BIN" startup --config "$WORK/big/custos.toml" --repeat 5
# Proofs and the background check are measured without the tiles publisher
# catching up on the bulk-loaded entries beside them (figures comparable
# with the runs before tiles existed).
export CUSTOS_LEDGER_TILES_URL=off
start_server "$WORK/big/custos.toml"
unset CUSTOS_LEDGER_TILES_URL
# The service verifies the whole log in the background after start-up;
# measure proofs once that is done (and say how long it took).
t0=$(date +%s%N)
until curl -s "$URL/healthz" | grep -q '"full_check":"passed"'; do sleep 0.2; done
echo "background full verification of $ENTRIES entries: done within $(( ($(date +%s%N) - t0) / 1000000 )) ms of listening"
"$BIN" proofs --url "$URL" --count 20000
echo "server-side time of those requests (custos_ledger_http_request_seconds, cumulative buckets):"
curl -s "$URL/metrics" | grep 'http_request_seconds_bucket{method="GET",route="/v1/proof/inclusion"' \
    | sed -n 's/.*le="\([^"]*\)"} \(.*\)/  <= \1 s: \2/p' | head -9
stop_server
benches/machine.sh
