#!/usr/bin/env bash
# Four simulated recorders ingested at once by `custos dock run` into the
# local object store, against `openssl dgst -sha256` over the same bytes.
#
#   benches/dock-ingest.sh [GIB_PER_RECORDER]     (default 2: 8 GiB in all)
#
# Each recorder is a directory slot holding GIB_PER_RECORDER GiB of footage
# in 256 MiB files named the simulated profile's way. The daemon starts with
# the four slots occupied and the clock starts with it; the run ends when
# every slot reports "safe to undock" on the status endpoint (every segment
# read once, hashed, stored, its manifest signed and stored, its object read
# back and verified, every custody event acknowledged by the in-process
# ledger, and every file wiped from its recorder). Then openssl hashes the
# same files, from the same (warm) page cache, in one process. Last, the
# floor: the steps no dock may skip (hash, copy into the store's file
# system, sync, hash the copy) done by openssl, cp and sync, four recorders
# at once.
#
# Prints the wall times, the ratio (target: at most 1.25), the floor, the CPU time each
# used (a figure other load on the machine does not change much) and each
# slot's time to "safe to undock". Needs about 2 x 4 x GIB_PER_RECORDER GiB
# of disk under target/dock-bench (CUSTOS_BENCH_DIR puts it elsewhere;
# CUSTOS_BENCH_STORE puts only the object store elsewhere, e.g. on a tmpfs
# such as /dev/shm/custos-bench, to take the disk's write speed out of the
# figure: openssl only reads).
set -euo pipefail
cd "$(dirname "$0")/.."

GIB=${1:-2}
RECORDERS=4
FILE_MIB=256
WORK=${CUSTOS_BENCH_DIR:-$PWD/target/dock-bench}
PORT=${CUSTOS_BENCH_PORT:-18711}

command -v openssl >/dev/null || { echo "dock-ingest: openssl is needed" >&2; exit 2; }
command -v curl >/dev/null || { echo "dock-ingest: curl is needed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "dock-ingest: python3 is needed" >&2; exit 2; }

cargo build --release --quiet --bin custos
CUSTOS=${CARGO_TARGET_DIR:-$PWD/target}/release/custos

mkdir -p "$WORK"
SEED=$WORK/seed-${GIB}g
files_per=$(( GIB * 1024 / FILE_MIB ))
if [ ! -f "$SEED/.complete" ]; then
    echo "dock-ingest: writing $RECORDERS x $GIB GiB of simulated footage to $SEED (once)" >&2
    rm -rf "$SEED"
    for r in $(seq 1 $RECORDERS); do
        d=$SEED/rec$r/DCIM/100MEDIA
        mkdir -p "$d"
        for i in $(seq 1 $files_per); do
            name=$(printf 'SIM%04d_1002%02d_20240501%02d%02d00_%04d.MP4' "$r" "$r" $(( 8 + i / 60 )) $(( i % 60 )) "$i")
            # AES-CTR keystream: fast, incompressible, different per file.
            # (openssl dies of SIGPIPE when head has enough: not an error.)
            { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:custos-$r-$i" -in /dev/zero 2>/dev/null || true; } \
                | head -c $(( FILE_MIB * 1024 * 1024 )) > "$d/$name"
            [ "$(stat -c %s "$d/$name")" -eq $(( FILE_MIB * 1024 * 1024 )) ] \
                || { echo "dock-ingest: could not write $d/$name" >&2; exit 1; }
        done
    done
    touch "$SEED/.complete"
fi

RUN=$WORK/run
STORE=${CUSTOS_BENCH_STORE:-$RUN/objects}
rm -rf "$RUN" "$STORE"
mkdir -p "$RUN/keys" "$RUN/slots"
"$CUSTOS" keygen --out "$RUN/keys/dock-01.key" >/dev/null
"$CUSTOS" keygen --out "$RUN/keys/ledger.key" >/dev/null
slots=""
for r in $(seq 1 $RECORDERS); do
    # Hard links: wiping a slot's files leaves the seed's in place.
    cp -al "$SEED/rec$r" "$RUN/slots/rec$r"
    slots="$slots\"$RUN/slots/rec$r\","
done
cat > "$RUN/custos.toml" <<EOF
[storage]
url = "file://$STORE"
[ledger]
data_dir = "./ledger"
origin = "bench.custos/ledger"
key_file = "./keys/ledger.key"
[dock]
id = "dock-01"
key_file = "./keys/dock-01.key"
data_dir = "./dock"
profiles_dir = "$PWD/firmware-profiles"
slots = [${slots%,}]
usb = false
status_listen = "127.0.0.1:$PORT"
concurrency = $RECORDERS
part_size_mib = 16
wipe = "after-verified"
EOF

# The same bytes, warm in the page cache for both runs.
cat "$SEED"/rec*/DCIM/100MEDIA/* > /dev/null

# One poller process for the whole run (a shell loop forking curl and
# python every 100 ms took 10-15 % of the CPU the dock is measured on).
PY=$(python3 -c 'import sys; print(sys.executable)')
start=$(date +%s.%N)
RUST_LOG=warn "$CUSTOS" dock run --config "$RUN/custos.toml" > "$RUN/dock.out" 2> "$RUN/dock.err" &
dock=$!
trap 'kill $dock 2>/dev/null || true' EXIT
if ! "$PY" - "$PORT" "$RECORDERS" "$dock" > "$RUN/status.json" <<'PY'
import json, os, sys, time, urllib.request
port, recorders, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
            body = r.read()
        slots = json.loads(body)["slots"]
        if len(slots) == recorders and all(x["safe_to_undock"] for x in slots):
            sys.stdout.write(body.decode())
            break
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.1)
PY
then
    echo "dock-ingest: custos dock run exited early:" >&2
    cat "$RUN/dock.err" >&2
    exit 1
fi
end=$(date +%s.%N)
status=$(cat "$RUN/status.json")
# utime + stime of the daemon, in clock ticks (fields 14 and 15).
dock_ticks=$(awk '{print $14 + $15}' /proc/$dock/stat)
kill -TERM $dock
wait $dock || true
trap - EXIT
stored=$(find "$STORE" -type f -name '*.MP4' | wc -l)
# Free the store before the reference runs: 8 GiB more in a tmpfs can push
# the seed out of the page cache.
rm -rf "$STORE"

ostart=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$RUN/openssl.time" openssl dgst -sha256 "$SEED"/rec*/DCIM/100MEDIA/* > "$RUN/openssl.out"
oend=$(date +%s.%N)
ossl_cpu=$(awk '{print $1 + $2}' "$RUN/openssl.time")

# The floor: the steps no dock may skip, done by the reference tools, the
# four recorders at once as the dock does them. Per file: hash it
# (openssl), copy it into the store's file system (cp, a copy inside the
# kernel) and make the copy durable (sync FILE), hash the copy (openssl:
# the read-back that DESIGN's invariant 1 requires before a wipe). No
# manifest, ledger, probe or journal work.
FLOOR=$STORE.floor
rm -rf "$FLOOR"
fstart=$(date +%s.%N)
for r in $(seq 1 $RECORDERS); do
    (
        mkdir -p "$FLOOR/rec$r"
        for f in "$SEED/rec$r"/DCIM/100MEDIA/*; do
            copy=$FLOOR/rec$r/${f##*/}
            openssl dgst -sha256 "$f" > /dev/null
            cp "$f" "$copy"
            sync "$copy"
            openssl dgst -sha256 "$copy" > /dev/null
        done
    ) &
done
wait
fend=$(date +%s.%N)
rm -rf "$FLOOR"

python3 - "$status" "$start" "$end" "$ostart" "$oend" "$GIB" "$RECORDERS" "$stored" \
    "$dock_ticks" "$(getconf CLK_TCK)" "$ossl_cpu" "$fstart" "$fend" <<'PY'
import json, sys
status = json.loads(sys.argv[1])
start, end, ostart, oend = map(float, sys.argv[2:6])
gib, recorders, stored = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
dock_cpu = float(sys.argv[9]) / float(sys.argv[10])
ossl_cpu = float(sys.argv[11])
floor = float(sys.argv[13]) - float(sys.argv[12])
dock, ossl = end - start, oend - ostart
total = gib * recorders
print(f"dock-ingest: {recorders} simulated recorders x {gib} GiB = {total} GiB, {stored} segments stored")
print(f"  custos dock run, all slots safe to undock: {dock:7.2f} s  ({total * 1024 / dock:6.0f} MiB/s)")
print(f"  openssl dgst -sha256, same files:          {ossl:7.2f} s  ({total * 1024 / ossl:6.0f} MiB/s)")
print(f"  ratio: {dock / ossl:.2f}x (target <= 1.25x)")
print(f"  floor, the same mandatory steps by reference tools (per file: openssl, cp, sync, openssl of the copy;")
print(f"    {recorders} recorders at once): {floor:7.2f} s = {floor / ossl:.2f}x openssl; custos = {dock / floor:.2f}x the floor")
print(f"  CPU time: custos {dock_cpu:.1f} s, openssl {ossl_cpu:.1f} s "
      f"(custos reads, hashes, writes, then reads back and hashes again every byte)")
for s in sorted(status["slots"], key=lambda s: s["slot"]):
    print(f"  {s['slot']}: {s['recorder_id']}, {s['segments_done']}/{s['segments_total']} segments, "
          f"safe to undock after {s['safe_after_seconds']:.2f} s")
PY
rm -rf "$STORE"
benches/machine.sh
