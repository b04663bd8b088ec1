"""reladiff's hash diff of two PostgreSQL tables by key: the peer the e2e
runner times against `synchub run --strategy hash`.

Compares the key and every given column with reladiff's hashdiff algorithm
(checksums of key ranges, bisected down to the rows that differ), with a
pool of `--threads` connections per side. Prints one JSON line:
{"keys": [...sorted differing keys...], "seconds": S, "plus": n, "minus": n}.
reladiff sends no telemetry; nothing here leaves 127.0.0.1.
"""

import argparse
import json
import os
import sys
import time

import reladiff
from reladiff import Algorithm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--dsn",
        default=os.environ.get("SYNCHUB_PEERS_DSN", "postgresql://postgres:unused@127.0.0.1:5432/test"),
        help="default: $SYNCHUB_PEERS_DSN (dlt's postgres destination wants a password; trust auth ignores it)",
    )
    p.add_argument("--table1", default="bench_src.items")
    p.add_argument("--table2", default="bench_dst.items")
    p.add_argument("--key", default="id")
    p.add_argument(
        "--columns",
        default="qty,category,price,title,created_at,updated_at,note,active",
        help="the compared columns besides the key",
    )
    p.add_argument("--threads", type=int, default=2, help="connections per side")
    a = p.parse_args()

    columns = tuple(c for c in a.columns.split(",") if c)
    start = time.perf_counter()
    t1 = reladiff.connect_to_table(a.dsn, tuple(a.table1.split(".")), a.key, thread_count=a.threads)
    t2 = reladiff.connect_to_table(a.dsn, tuple(a.table2.split(".")), a.key, thread_count=a.threads)
    keys = set()
    plus = minus = 0
    for sign, row in reladiff.diff_tables(
        t1,
        t2,
        extra_columns=columns,
        algorithm=Algorithm.HASHDIFF,
        threaded=True,
        max_threadpool_size=a.threads,
    ):
        keys.add(int(row[0]))
        if sign == "+":
            plus += 1
        else:
            minus += 1
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "keys": sorted(keys),
                "seconds": seconds,
                "plus": plus,
                "minus": minus,
                "reladiff": getattr(reladiff, "__version__", "?"),
                "threads": a.threads,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
