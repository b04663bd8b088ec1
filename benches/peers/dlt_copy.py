"""dlt's full copy of one PostgreSQL table into a fresh schema: the peer the
e2e runner times against `synchub run --strategy full` into an empty table.

dlt's `sql_database` source reads with the connectorx backend (Arrow tables,
no per-row Python); the postgres destination loads them with the `csv` loader
file format (COPY ... FROM STDIN), dlt's fastest load path for Arrow data.
write_disposition "replace" into a schema that does not exist yet.

Prints one JSON line: {"rows": N, "seconds": S, ...}. Run by the runner with
RUNTIME__DLTHUB_TELEMETRY=false; see setup.sh.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.sources.sql_database import sql_table  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--dsn",
        default=os.environ.get("SYNCHUB_PEERS_DSN", "postgresql://postgres:unused@127.0.0.1:5432/test"),
        help="default: $SYNCHUB_PEERS_DSN (dlt's postgres destination wants a password; trust auth ignores it)",
    )
    p.add_argument("--src-schema", default="bench_src")
    p.add_argument("--table", default="items")
    p.add_argument("--dest-schema", default="bench_dlt")
    p.add_argument("--pipelines-dir", required=True, help="dlt's working directory")
    p.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="connectorx partition_num on the first primary-key column (1: one query)",
    )
    p.add_argument("--key", default="id")
    a = p.parse_args()

    backend_kwargs = {}
    if a.partitions > 1:
        backend_kwargs = {"partition_on": a.key, "partition_num": a.partitions}
    start = time.perf_counter()
    source = sql_table(
        credentials=a.dsn,
        schema=a.src_schema,
        table=a.table,
        backend="connectorx",
        backend_kwargs=backend_kwargs,
        reflection_level="full_with_precision",
    )
    pipeline = dlt.pipeline(
        pipeline_name="synchub_bench_dlt",
        pipelines_dir=a.pipelines_dir,
        destination=dlt.destinations.postgres(a.dsn),
        dataset_name=a.dest_schema,
        progress="log" if os.environ.get("DLT_PROGRESS") else None,
    )
    info = pipeline.run(source, write_disposition="replace", loader_file_format="csv")
    info.raise_on_failed_jobs()
    seconds = time.perf_counter() - start
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(a.table, 0)
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "dlt": dlt.__version__,
                "dest": f"{a.dest_schema}.{a.table}",
                "loader_file_format": "csv",
                "partitions": a.partitions,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
