"""Shared pieces of the end-to-end checkers, written from the public specs
only (no Custos code): the ledger's HTTP API (DESIGN.md "Ledger HTTP API"),
C2SP verifier keys and signed notes, DSSE v1, RFC 6962 Merkle hashing.

Every checker collects failures, prints each as one line on standard error
("check_x: FAIL: what and where"), and exits 1 if there was any; on success
it prints one summary line and exits 0.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Report:
    """Failures of one checker, each printed as one line."""

    def __init__(self, name):
        self.name = name
        self.failures = 0

    def fail(self, message):
        self.failures += 1
        print(f"{self.name}: FAIL: {message}", file=sys.stderr, flush=True)

    def check(self, ok, message):
        if not ok:
            self.fail(message)
        return ok

    def finish(self, summary):
        if self.failures:
            print(f"{self.name}: {self.failures} failure(s)", file=sys.stderr)
            sys.exit(1)
        print(f"{self.name}: ok: {summary}")
        sys.exit(0)


def run(name, main):
    """Run a checker's `main`; anything unexpected is one line, exit 1."""
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # one clear line, not a traceback
        print(f"{name}: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


def b64decode(text):
    """Standard or URL-safe base64, padded or not (DSSE allows either)."""
    text = text.strip()
    text += "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(text)
    return base64.b64decode(text, validate=True)


# --- the ledger over HTTP -------------------------------------------------


class Ledger:
    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def get(self, path):
        req = urllib.request.Request(self.url + path)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"FAIL: GET {path}: HTTP {e.code}: {e.read()[:200]!r}")
        except urllib.error.URLError as e:
            raise SystemExit(f"FAIL: GET {self.url}{path}: {e.reason}")

    def checkpoint(self):
        return self.get("/v1/checkpoint").decode("utf-8")

    def entries(self, size):
        """Entry lines [0, size) as (raw bytes, parsed line), page by page."""
        out = []
        while len(out) < size:
            body = self.get(f"/v1/entries?start={len(out)}&end={size}")
            lines = [l for l in body.decode("utf-8").split("\n") if l]
            if not lines:
                raise SystemExit(f"FAIL: /v1/entries stopped at {len(out)} of {size}")
            for line in lines:
                parsed = json.loads(line)
                out.append((b64decode(parsed["raw"]), parsed))
        return out

    def segments(self):
        body = json.loads(self.get("/v1/segments?limit=1000"))
        return body["segments"]


# --- C2SP verifier keys and signed notes ----------------------------------


class VerifierKey:
    """A C2SP verifier key: `name+hash+base64(0x01 || ed25519 public key)`."""

    def __init__(self, text):
        name, hash_hex, key_b64 = text.strip().split("+", 2)
        raw = base64.b64decode(key_b64)
        if len(raw) != 33 or raw[0] != 0x01:
            raise ValueError("not an Ed25519 verifier key (type byte 0x01, 32 bytes)")
        self.name = name
        self.raw = raw
        self.key_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        if self.key_hash.hex() != hash_hex:
            raise ValueError(f"key hash {hash_hex} does not match the key ({self.key_hash.hex()})")
        self.public = Ed25519PublicKey.from_public_bytes(raw[1:])
        self.keyid = f"{name}+{hash_hex}"

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(f.read())

    def verify(self, signature, message):
        try:
            self.public.verify(signature, message)
            return True
        except InvalidSignature:
            return False


def verify_note(note, key):
    """The text of a C2SP signed note if one of its signatures is `key`'s
    and valid, else None."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        return None
    text += "\n"
    for line in sigs.split("\n"):
        if not line:
            continue
        if not line.startswith("\u2014 "):
            return None
        name, _, sig_b64 = line[2:].rpartition(" ")
        if name != key.name:
            continue
        blob = base64.b64decode(sig_b64)
        if blob[:4] == key.key_hash and key.verify(blob[4:], text.encode("utf-8")):
            return text
    return None


def verify_note_any(note, keys):
    """(text, key) for the first of `keys` that validly signed the note, or
    (None, None)."""
    for key in keys:
        text = verify_note(note, key)
        if text is not None:
            return text, key
    return None, None


def parse_checkpoint(text):
    """(origin, size, root bytes) of a tlog-checkpoint body."""
    lines = text.split("\n")
    return lines[0], int(lines[1]), base64.b64decode(lines[2])


# --- DSSE v1 --------------------------------------------------------------


def pae(payload_type, payload):
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def verify_dsse(envelope, key):
    """(payload bytes, error or None): the payload, and why the envelope has
    no valid signature by `key` if it has none."""
    payload = b64decode(envelope["payload"])
    message = pae(envelope["payloadType"], payload)
    sigs = envelope.get("signatures") or []
    for s in sigs:
        if s.get("keyid") not in (None, "", key.keyid):
            continue
        if key.verify(b64decode(s["sig"]), message):
            return payload, None
    ids = ", ".join(str(s.get("keyid")) for s in sigs)
    return payload, f"no valid signature by {key.keyid} (signatures: {ids or 'none'})"


def canonical(value):
    """RFC 8785 for the values manifests hold (strings, integers, booleans,
    null, objects, arrays; no floats)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- RFC 6962 --------------------------------------------------------------


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves):
    """RFC 6962 §2.1 MTH over a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


# --- the segments ---------------------------------------------------------


def signed_manifests(entries):
    """{segment id: (manifest dict, envelope)} from segment.ingested entries."""
    out = {}
    for _, line in entries:
        entry = line["entry"]
        if entry.get("action") == "segment.ingested":
            env = entry["details"]["manifest"]
            payload = b64decode(env["payload"])
            out.setdefault(entry["subject"], []).append((json.loads(payload), env))
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def originals(directory, depth=0):
    """{sha256 hex: path} of the files under `directory`, each path relative
    to it without its first `depth` components (pristine copies are kept as
    originals/<device>/<path on the recorder>: depth 1 gives the path on the
    recorder)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).split(os.sep)[depth:]
            out[sha256_file(path)] = "/".join(rel)
    return out


def add_ledger_args(parser):
    parser.add_argument("--ledger", required=True, help="the ledger's base URL")
    parser.add_argument("--token", default=os.environ.get("CUSTOS_E2E_TOKEN"),
                        help="a reader's bearer token (default $CUSTOS_E2E_TOKEN)")
