"""Not a check: the attacker's tool. With a dock's stolen credential (its
32-byte Ed25519 seed, --key, and its key name, --name), sign a custody event
exactly as a dock does — a DSSE envelope (payloadType
application/vnd.custos.event+json) over the RFC 8785 payload {"action",
"subject", "details", "time"} — and print the envelope as one JSON line.
The adversary tests POST it with the stolen token and show that the ledger
refuses every event the credential must not sign. Uses only Python's
`cryptography`, nothing of Custos.

    forge_event.py --key dock.key --name dock-01 --action A --subject S [--details JSON]
"""

import argparse
import base64
import datetime
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custos_check import canonical

EVENT_TYPE = "application/vnd.custos.event+json"


def pae(payload_type, body):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ledger", help="ignored (the harness passes it to every script)")
    p.add_argument("--key", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--action", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--details", default="{}")
    args = p.parse_args()
    with open(args.key, "rb") as f:
        private = Ed25519PrivateKey.from_private_bytes(f.read())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_hash = hashlib.sha256(args.name.encode() + b"\n\x01" + public).digest()[:4]
    keyid = f"{args.name}+{key_hash.hex()}"
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    payload = canonical({
        "action": args.action,
        "subject": args.subject,
        "details": json.loads(args.details),
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    sig = private.sign(pae(EVENT_TYPE, payload))
    print(json.dumps({
        "payload": base64.b64encode(payload).decode(),
        "payloadType": EVENT_TYPE,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
    }))


if __name__ == "__main__":
    main()
