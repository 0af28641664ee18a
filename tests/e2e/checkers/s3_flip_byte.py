"""Not a check: the tamperer. Flip one byte in the middle of an object with
boto3 (a plain PUT over the same key, as anyone holding the store's keys
could), so that the tests can show the checks notice.

    s3_flip_byte.py --bucket B --key KEY
"""

import argparse

from check_store import s3_client


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ledger", help="ignored (the harness passes it to every script)")
    p.add_argument("--bucket", required=True)
    p.add_argument("--key", required=True)
    args = p.parse_args()
    s3 = s3_client()
    data = bytearray(s3.get_object(Bucket=args.bucket, Key=args.key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=args.bucket, Key=args.key, Body=bytes(data))
    print(f"flipped byte {len(data) // 2} of s3://{args.bucket}/{args.key}")


if __name__ == "__main__":
    main()
