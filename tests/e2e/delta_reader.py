"""An independent reader of a Delta table for the end-to-end tests: the
Python `deltalake` package says which Parquet files are live in the table's
log, DuckDB reads their values. Prints the row count and an order-independent
checksum of every value (the sum of the first 8 bytes of each row's SHA-256,
the row as `|`-joined text, NULL as \\N), as tests/e2e/delta_lake.rs computes
them from PostgreSQL.

usage: delta_reader.py <table folder> <select list producing text columns>
"""

import hashlib
import sys

import duckdb
from deltalake import DeltaTable

table, select = sys.argv[1], sys.argv[2]
files = DeltaTable(table).file_uris()
con = duckdb.connect()
rows = con.execute(f"SELECT {select} FROM read_parquet(?)", [files]).fetchall()
checksum = 0
for row in rows:
    text = "|".join("\\N" if v is None else v for v in row)
    checksum = (checksum + int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")) % 2**64
print(len(rows), checksum)
