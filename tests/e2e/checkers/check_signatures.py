"""Signatures, checked with Python's `cryptography` and nothing of Custos:

- the ledger's checkpoint is a C2SP signed note with a valid Ed25519
  signature by one of the ledger's verifier keys (--ledger-key, repeated
  while the ledger's key is rotated);
- every segment.ingested entry carries the segment's manifest as a DSSE
  envelope (payloadType application/vnd.custos.manifest+json, RFC 8785
  payload) validly signed by the key of the dock that made the entry
  (--dock-key, one per dock, named by the dock's id), naming the entry's
  segment;
- every entry a dock signed carries its DSSE event envelope (payloadType
  application/vnd.custos.event+json), validly signed by that dock's key,
  whose payload says the entry's action, subject and details.

    check_signatures.py --ledger URL --ledger-key ledger.pub... --dock-key dock.pub...
"""

import argparse
import json

from custos_check import (run, Ledger, Report, VerifierKey, add_ledger_args, canonical,
                          parse_checkpoint, verify_dsse, verify_note_any)

MANIFEST_TYPE = "application/vnd.custos.manifest+json"
EVENT_TYPE = "application/vnd.custos.event+json"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ledger_args(p)
    p.add_argument("--ledger-key", action="append", required=True)
    p.add_argument("--dock-key", action="append", required=True)
    args = p.parse_args()
    r = Report("check_signatures")
    ledger_keys = [VerifierKey.load(k) for k in args.ledger_key]
    dock_keys = {k.name: k for k in map(VerifierKey.load, args.dock_key)}
    ledger = Ledger(args.ledger, args.token)

    note = ledger.checkpoint()
    body, ledger_key = verify_note_any(note, ledger_keys)
    if body is None:
        r.fail(f"checkpoint: no valid signature by {', '.join(k.keyid for k in ledger_keys)}")
        r.finish("")
    _, size, _ = parse_checkpoint(body)
    entries = ledger.entries(size)

    manifests = events = 0
    for _, line in entries:
        entry = line["entry"]
        seq = entry["seq"]
        where = f"entry {seq} ({entry['action']} {entry['subject']})"
        dock_key = dock_keys.get(entry["actor"]["id"]) if entry["actor"]["kind"] == "dock" else None
        if entry["actor"]["kind"] == "dock" and dock_key is None:
            r.fail(f"{where}: by dock {entry['actor']['id']!r}, whose key this check was not given")
            continue
        if entry["action"] == "segment.ingested":
            if not r.check(dock_key is not None, f"{where}: an ingest not made by a dock ({entry['actor']})"):
                continue
            env = entry["details"].get("manifest")
            if not r.check(isinstance(env, dict), f"{where}: no DSSE manifest in details.manifest"):
                continue
            r.check(env.get("payloadType") == MANIFEST_TYPE,
                    f"{where}: manifest payloadType {env.get('payloadType')!r}")
            payload, err = verify_dsse(env, dock_key)
            if r.check(err is None, f"{where}: manifest: {err}"):
                manifests += 1
            manifest = json.loads(payload)
            r.check(canonical(manifest) == payload, f"{where}: manifest payload is not RFC 8785 canonical JSON")
            r.check(manifest.get("segment_id") == entry["subject"],
                    f"{where}: manifest names segment {manifest.get('segment_id')!r}")
        env = entry.get("envelope")
        if entry["actor"]["kind"] == "dock":
            if not r.check(env is not None, f"{where}: a dock's entry without its signed envelope"):
                continue
            r.check(env.get("payloadType") == EVENT_TYPE, f"{where}: event payloadType {env.get('payloadType')!r}")
            payload, err = verify_dsse(env, dock_key)
            if not r.check(err is None, f"{where}: event: {err}"):
                continue
            event = json.loads(payload)
            for field in ("action", "subject", "details"):
                r.check(event.get(field) == entry[field],
                        f"{where}: the signed event's {field} differs from the entry's")
            events += 1
        elif env is not None:
            r.fail(f"{where}: an envelope signed by {entry['actor']}, whose key this check does not have")

    r.finish(f"checkpoint size {size} signed by {ledger_key.keyid}; "
             f"{manifests} manifests and {events} dock events signed by "
             f"{', '.join(k.keyid for k in dock_keys.values())}")


if __name__ == "__main__":
    run("check_signatures", main)
