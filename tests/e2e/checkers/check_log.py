"""The ledger's log, recomputed with our own small code (RFC 6962, no
Custos code):

- /v1/entries serves entries 0..size-1 of the signed checkpoint, each line's
  `entry` being its `raw` bytes;
- entry n's `prev` is the base64 leaf hash of entry n-1 (none on entry 0);
- the RFC 6962 Merkle root over the raw entries equals the checkpoint's;
- each --earlier checkpoint (kept from before, e.g. before a restart) is
  signed and its root is the root of the first entries: the log only grew;
- the entries a dock signed are in the order of its own signed event
  times: its queued events were delivered in the order it made them;
- with --segments N: exactly N segments, each with exactly one
  segment.ingested, one segment.verified and (with --wiped) one
  segment.wiped entry, in that order.

    check_log.py --ledger URL --ledger-key ledger.pub... [--earlier FILE]... [--segments N] [--wiped]

(--ledger-key repeated: a checkpoint signed by any of them is the ledger's,
as while its key is rotated.)
"""

import argparse
import base64
import json
from collections import defaultdict
from datetime import datetime

from custos_check import (run, Ledger, Report, VerifierKey, add_ledger_args, b64decode,
                          leaf_hash, merkle_root, parse_checkpoint, verify_note_any)

STEPS = ["segment.ingested", "segment.verified", "segment.wiped"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ledger_args(p)
    p.add_argument("--ledger-key", action="append", required=True)
    p.add_argument("--earlier", action="append", default=[], help="an older checkpoint file")
    p.add_argument("--segments", type=int)
    p.add_argument("--wiped", action="store_true")
    args = p.parse_args()
    r = Report("check_log")
    keys = [VerifierKey.load(k) for k in args.ledger_key]
    keyids = ", ".join(k.keyid for k in keys)
    ledger = Ledger(args.ledger, args.token)

    body, _ = verify_note_any(ledger.checkpoint(), keys)
    if body is None:
        r.fail(f"checkpoint: no valid signature by {keyids}")
        r.finish("")
    origin, size, root = parse_checkpoint(body)
    entries = ledger.entries(size)
    leaves = []
    for n, (raw, line) in enumerate(entries):
        entry = line["entry"]
        r.check(line["seq"] == n and entry.get("seq") == n, f"line {n}: seq {line['seq']}/{entry.get('seq')}")
        r.check(json.loads(raw) == entry, f"entry {n}: `entry` is not its `raw` bytes")
        if n == 0:
            r.check("prev" not in entry, "entry 0 has a prev")
        else:
            want = base64.b64encode(leaves[-1]).decode()
            r.check(entry.get("prev") == want,
                    f"entry {n}: prev {entry.get('prev')} is not the leaf hash of entry {n - 1} ({want})")
        leaves.append(leaf_hash(raw))
    r.check(merkle_root(leaves) == root,
            f"checkpoint root {base64.b64encode(root).decode()} is not the RFC 6962 root of the {size} entries")

    for path in args.earlier:
        with open(path, encoding="utf-8") as f:
            old, _ = verify_note_any(f.read(), keys)
        if not r.check(old is not None, f"{path}: no valid signature by {keyids}"):
            continue
        old_origin, old_size, old_root = parse_checkpoint(old)
        r.check(old_origin == origin, f"{path}: origin {old_origin!r}, now {origin!r}")
        if r.check(old_size <= size, f"{path}: size {old_size} is beyond today's {size}: the log shrank"):
            r.check(merkle_root(leaves[:old_size]) == old_root,
                    f"{path}: the first {old_size} entries no longer hash to its root: the log was rewritten")

    last_event = {}
    for _, line in entries:
        e = line["entry"]
        env = e.get("envelope")
        if e["actor"]["kind"] != "dock" or env is None:
            continue
        made = datetime.fromisoformat(json.loads(b64decode(env["payload"]))["time"])
        dock = e["actor"]["id"]
        if dock in last_event:
            seq, before = last_event[dock]
            r.check(made >= before, f"entry {e['seq']}: dock {dock}'s event made at {made.isoformat()} "
                                    f"is on the record after entry {seq}, made later ({before.isoformat()})")
        last_event[dock] = (e["seq"], made)

    steps = defaultdict(list)
    for _, line in entries:
        e = line["entry"]
        if e["action"] in STEPS:
            steps[e["subject"]].append((e["seq"], e["action"]))
    if args.segments is not None:
        r.check(len(steps) == args.segments, f"{len(steps)} segments on the record, expected {args.segments}")
        want = STEPS if args.wiped else STEPS[:2]
        for seg, seen in sorted(steps.items()):
            actions = [a for _, a in sorted(seen)]
            r.check(actions == want, f"segment {seg}: entries {actions}, expected exactly {want} in order")

    r.finish(f"{size} entries chained, RFC 6962 root matches the checkpoint, "
             f"{len(args.earlier)} earlier checkpoint(s) consistent, {len(steps)} segments")


if __name__ == "__main__":
    run("check_log", main)
