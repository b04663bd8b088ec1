"""An independent reader of a Delta table for the end-to-end tests: the
Python `deltalake` package says which Parquet files are live in the table's
log, DuckDB reads their values. Prints the row count and an order-independent
checksum of every value (the sum of the first 8 bytes of each row's SHA-256,
the row as `|`-joined text, NULL as \\N), as tests/e2e/delta_lake.rs computes
them from PostgreSQL.

usage: delta_reader.py <table folder or s3:// uri> <select list producing text columns>

A table on S3 is opened with the storage options given as JSON in
DELTA_READER_STORAGE_OPTIONS; its files are read through the Arrow dataset
`deltalake` makes of them (DuckDB's own S3 reader is an extension it would
download).
"""

import hashlib
import json
import os
import sys

import duckdb
from deltalake import DeltaTable

table, select = sys.argv[1], sys.argv[2]
options = os.environ.get("DELTA_READER_STORAGE_OPTIONS")
con = duckdb.connect()
if options:
    dataset = DeltaTable(table, storage_options=json.loads(options)).to_pyarrow_dataset()
    con.register("items", dataset)
    rows = con.execute(f"SELECT {select} FROM items").fetchall()
else:
    files = DeltaTable(table).file_uris()
    rows = con.execute(f"SELECT {select} FROM read_parquet(?)", [files]).fetchall()
checksum = 0
for row in rows:
    text = "|".join("\\N" if v is None else v for v in row)
    checksum = (checksum + int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")) % 2**64
print(len(rows), checksum)
