"""The object store, read with boto3 (not Custos's S3 client):

- every object in the bucket is byte for byte one of the recorders' original
  files (--originals: pristine copies kept by the test, as
  DIR/<device>/<path on the recorder>), or the signed manifest the dock
  keeps next to it (`<key>.manifest.json`, the DSSE envelope of the
  segment.ingested entry, byte for byte);
- every original file that is gone from its recorder (--recorder) is stored,
  with a segment.verified entry on the record: nothing was wiped unverified;
- unless --partial (a run was cut short): the bucket holds exactly the
  objects the signed manifests name and their manifests, no more, no fewer; each one's size and
  SHA-256 are the manifest's and the catalogue's (/v1/segments), its
  original name is the manifest's; and no multipart upload is left open.

    check_store.py --ledger URL --bucket B --originals DIR [--recorder DIR]... [--partial] [--segments N]

The store is found through the standard AWS_* variables.
"""

import argparse
import hashlib
import json
import os

import boto3
from botocore.config import Config

from custos_check import run, Ledger, Report, add_ledger_args, originals, signed_manifests


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )


def objects(s3, bucket):
    """{key: (size, sha256 hex)} of every object, each downloaded."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            h = hashlib.sha256()
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                h.update(chunk)
            out[obj["Key"]] = (obj["Size"], h.hexdigest())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ledger_args(p)
    p.add_argument("--bucket", required=True)
    p.add_argument("--originals", required=True, help="pristine copies of the recorders' files")
    p.add_argument("--recorder", action="append", default=[], help="a recorder's folder as it is now")
    p.add_argument("--partial", action="store_true", help="a run was cut short: check only what must hold at any instant")
    p.add_argument("--segments", type=int, help="how many segments must be stored")
    args = p.parse_args()
    r = Report("check_store")
    ledger = Ledger(args.ledger, args.token)
    s3 = s3_client()

    stored = objects(s3, args.bucket)
    by_sha = {sha: key for key, (_, sha) in stored.items()}
    pristine = originals(args.originals, depth=1)
    entries = ledger.entries(int(ledger.checkpoint().split("\n")[1]))
    verified = {e["entry"]["subject"] for _, e in entries if e["entry"]["action"] == "segment.verified"}
    manifests = signed_manifests(entries)
    envelopes = {}
    for seg, found in manifests.items():
        m, env = found[0]
        envelopes[m["object"]["key"] + ".manifest.json"] = env
    for key, (_, sha) in sorted(stored.items()):
        if key.endswith(".manifest.json"):
            if key in envelopes:
                continue
            if args.partial:
                # A crash between the manifest's upload and its entry: it
                # must still be a manifest of one of the footage objects.
                if key.removesuffix(".manifest.json") in stored:
                    continue
        r.check(sha in pristine, f"s3://{args.bucket}/{key}: its bytes are none of the recorders' original files")
    verified_sha = {m[0][0]["digests"]["sha256"].removeprefix("sha256:") for s, m in manifests.items() if s in verified}
    on_recorders = set()
    for rec in args.recorder:
        on_recorders.update(originals(rec))
    wiped = 0
    for sha, name in sorted(pristine.items(), key=lambda x: x[1]):
        if sha in on_recorders:
            continue
        wiped += 1
        r.check(sha in by_sha, f"{name}: gone from the recorder but not in the bucket")
        r.check(sha in verified_sha, f"{name}: gone from the recorder without a segment.verified entry")

    if not args.partial:
        catalogue = {s["segment_id"]: s for s in ledger.segments()}
        named = {}
        for seg, found in sorted(manifests.items()):
            m = found[0][0]
            key = m["object"]["key"]
            named[key] = seg
            named[key + ".manifest.json"] = seg
            where = f"segment {seg} (s3://{args.bucket}/{key})"
            r.check(m["object"]["url"].rstrip("/") == f"s3://{args.bucket}",
                    f"{where}: manifest names store {m['object']['url']!r}")
            if not r.check(key in stored, f"{where}: in the manifest, missing from the bucket"):
                continue
            size, sha = stored[key]
            r.check(size == m["size"], f"{where}: {size} bytes stored, the manifest says {m['size']}")
            r.check(f"sha256:{sha}" == m["digests"]["sha256"],
                    f"{where}: stored SHA-256 {sha}, the manifest says {m['digests']['sha256']}")
            r.check(pristine.get(sha) == m["original_name"],
                    f"{where}: manifest's original name {m['original_name']!r}, the bytes are {pristine.get(sha)!r}")
            side = key + ".manifest.json"
            if r.check(side in stored, f"{where}: no signed manifest {side} next to it"):
                got = json.loads(s3.get_object(Bucket=args.bucket, Key=side)["Body"].read())
                r.check(got == found[0][1], f"{where}: {side} is not the envelope of its segment.ingested entry")
            cat = catalogue.get(seg)
            if r.check(cat is not None, f"{where}: not in the catalogue"):
                r.check(cat["manifest"] == m, f"{where}: the catalogue's manifest differs from the signed one")
                r.check(cat["status"] in ("verified", "wiped"), f"{where}: catalogue status {cat['status']!r}")
        for key in sorted(set(stored) - set(named)):
            r.fail(f"s3://{args.bucket}/{key}: in the bucket, named by no manifest")
        if args.segments is not None:
            r.check(len(manifests) == args.segments, f"{len(manifests)} segments ingested, expected {args.segments}")
        uploads = s3.list_multipart_uploads(Bucket=args.bucket).get("Uploads", [])
        for u in uploads:
            r.fail(f"s3://{args.bucket}/{u['Key']}: multipart upload {u['UploadId']} left open")

    r.finish(f"{len(stored)} objects in s3://{args.bucket}, each an original recording or its signed manifest; "
             f"{wiped} files wiped, each stored and verified first")


if __name__ == "__main__":
    run("check_store", main)
