"""Not a check: the forger. Write a checkpoint of the same size as FILE but
another root, validly signed with the ledger's seed (--key, a 32-byte
Ed25519 seed): what an auditor's kept checkpoint looks like against a log
that was rewritten since. The tests show check_log.py refuses it.

    forge_checkpoint.py --key ledger.key --name ledger --from FILE --out FILE
"""

import argparse
import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ledger", help="ignored (the harness passes it to every script)")
    p.add_argument("--key", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--from", dest="src", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.key, "rb") as f:
        private = Ed25519PrivateKey.from_private_bytes(f.read())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_hash = hashlib.sha256(args.name.encode() + b"\n\x01" + public).digest()[:4]
    with open(args.src, encoding="utf-8") as f:
        text = f.read().partition("\n\n")[0] + "\n"
    lines = text.split("\n")
    root = bytearray(base64.b64decode(lines[2]))
    root[0] ^= 0x01
    lines[2] = base64.b64encode(bytes(root)).decode()
    text = "\n".join(lines)
    sig = private.sign(text.encode())
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(f"{text}\n\u2014 {args.name} {base64.b64encode(key_hash + sig).decode()}\n")
    print(f"forged {args.out}")


if __name__ == "__main__":
    main()
