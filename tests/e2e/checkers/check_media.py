"""The footage, probed with ffprobe (not Custos's FFmpeg bindings): every
object a signed manifest names, downloaded with boto3, is an MP4 with one
H.264 video and one AAC audio stream whose duration is the manifest's
`media.duration_ms` (within 50 ms), and the manifest calls it undamaged.

    check_media.py --ledger URL --bucket B
"""

import argparse
import json
import subprocess
import tempfile

from check_store import s3_client
from custos_check import run, Ledger, Report, add_ledger_args, signed_manifests

TOLERANCE_MS = 50


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ledger_args(p)
    p.add_argument("--bucket", required=True)
    args = p.parse_args()
    r = Report("check_media")
    ledger = Ledger(args.ledger, args.token)
    s3 = s3_client()
    entries = ledger.entries(int(ledger.checkpoint().split("\n")[1]))
    probed = 0
    for seg, found in sorted(signed_manifests(entries).items()):
        m = found[0][0]
        key = m["object"]["key"]
        where = f"segment {seg} (s3://{args.bucket}/{key})"
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            s3.download_fileobj(args.bucket, key, f)
            f.flush()
            out = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries",
                 "stream=codec_type,codec_name:format=format_name,duration", "-of", "json", f.name],
                capture_output=True, text=True)
        if not r.check(out.returncode == 0, f"{where}: ffprobe: {out.stderr.strip()[:200]}"):
            continue
        info = json.loads(out.stdout)
        codecs = sorted((s["codec_type"], s["codec_name"]) for s in info.get("streams", []))
        r.check(codecs == [("audio", "aac"), ("video", "h264")], f"{where}: streams {codecs}, expected H.264 + AAC")
        r.check("mp4" in info["format"]["format_name"], f"{where}: container {info['format']['format_name']!r}")
        duration_ms = round(float(info["format"]["duration"]) * 1000)
        media = m.get("media") or {}
        want = media.get("duration_ms")
        r.check(want is not None and abs(duration_ms - want) <= TOLERANCE_MS,
                f"{where}: ffprobe says {duration_ms} ms, the manifest {want} ms")
        r.check(media.get("damaged") is None, f"{where}: manifest says damaged: {media.get('damaged')}")
        probed += 1
    r.finish(f"{probed} objects are H.264/AAC MP4s of the manifests' durations")


if __name__ == "__main__":
    run("check_media", main)
