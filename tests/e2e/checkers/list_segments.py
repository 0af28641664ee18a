"""Not a check: the catalogue as tab-separated lines for the tests,
`segment id, status, object key, original name`, read from /v1/segments.

    list_segments.py --ledger URL
"""

import argparse

from custos_check import Ledger, add_ledger_args


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ledger_args(p)
    args = p.parse_args()
    for s in Ledger(args.ledger, args.token).segments():
        m = s["manifest"]
        print(f"{s['segment_id']}\t{s['status']}\t{m['object']['key']}\t{m['original_name']}")


if __name__ == "__main__":
    main()
