#!/usr/bin/env bash
# Where the time of a delta with 1% of the rows changed one in a hundred goes, on the
# PostgreSQL side: the write every tool must do, `INSERT … ON CONFLICT DO UPDATE` of the
# changed rows into a copy of the table, profiled with EXPLAIN (ANALYZE, BUFFERS, WAL).
#
#   benches/profile/spread-delta.sh [ROWS]        (default 2000000; schema bench_profile, dropped)
#
# Each variant runs ROUNDS times (default 3), each round on a fresh 1% of the rows:
#   after CHECKPOINT       as in the benchmark: the first change to each page since the
#                          checkpoint writes the whole page to the WAL (full-page image)
#   no checkpoint          the same pages written again: no full-page images
#   2 connections          the rows split in two key ranges, each half on its own connection, at once
#   wal_compression=lz4    full-page images compressed (a server setting; needs superuser)
# and the disk's sequential write speed with fdatasync, which bounds how fast WAL goes out.
set -euo pipefail
ROWS=${1:-2000000}
ROUNDS=${ROUNDS:-3}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" -d "${PGDATABASE:-test}")
S=bench_profile
COLS="id, qty, category, price, title, created_at, updated_at, note, active"
SET_ALL="qty = EXCLUDED.qty, category = EXCLUDED.category, price = EXCLUDED.price, title = EXCLUDED.title, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, note = EXCLUDED.note, active = EXCLUDED.active"

cleanup() { "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS $S CASCADE" 2>/dev/null || true; }
trap cleanup EXIT

echo "generating $ROWS rows (the benchmark's table) and a copy of them"
"${PSQL[@]}" <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
CREATE TABLE $S.src (id bigint PRIMARY KEY, qty int NOT NULL, category int NOT NULL,
  price numeric(12,2) NOT NULL, title text NOT NULL, created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL, note text, active boolean NOT NULL);
INSERT INTO $S.src SELECT g, (g % 1000)::int, (g % 37)::int, round(((g * 7919) % 10000000) / 100.0, 2),
  left(repeat(md5(g::text), 3), 8 + ((g * 7919) % 90)::int),
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1.5 second',
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1.5 second',
  CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END, g % 2 = 0
FROM generate_series(1::bigint, $ROWS) g;
CREATE TABLE $S.dst (LIKE $S.src INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO $S.dst SELECT * FROM $S.src;
SQL
"${PSQL[@]}" -c "VACUUM ANALYZE $S.dst"
"${PSQL[@]}" -At <<SQL
SELECT 'destination: ' || pg_size_pretty(pg_relation_size('$S.dst')) || ' of rows, '
  || pg_size_pretty(pg_indexes_size('$S.dst')) || ' of index; shared_buffers ' || current_setting('shared_buffers')
  || '; wal_compression ' || current_setting('wal_compression');
SQL

# upsert ROUND PART PARTS [SET …]: the rows with id % 100 = ROUND in key range PART of
# PARTS, changed, upserted in one transaction; prints the statement's execution time,
# WAL and buffers as EXPLAIN counts them.
upsert() {
  local round=$1 part=$2 parts=$3 extra=${4:-}
  "${PSQL[@]}" -At <<SQL | awk '
    /Buffers: shared/ && !seen++ { for (i = 1; i <= NF; i++) { split($i, kv, "="); b[kv[1]] = kv[2] + 0 } }
    /WAL: records/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); w[kv[1]] = kv[2] + 0 } }
    /Execution Time/ { ms = $3 }
    END { printf "%4.0f ms  WAL %3.0f MB  full-page images %6d  pages read %6d, written by the backend %6d\n",
          ms, w["bytes"] / 1048576, w["fpi"], b["read"], b["written"] }'
BEGIN;
$extra
CREATE TEMP TABLE stage ON COMMIT DROP AS
  SELECT id, qty + 1 AS qty, category, price, title, created_at,
         updated_at + interval '1 day' AS updated_at, note, active
  FROM $S.src WHERE id % 100 = $round AND (id - 1) * $parts / $ROWS = $part;
ANALYZE stage;
EXPLAIN (ANALYZE, BUFFERS, WAL, TIMING OFF)
  INSERT INTO $S.dst ($COLS) SELECT $COLS FROM stage ON CONFLICT (id) DO UPDATE SET $SET_ALL;
COMMIT;
SQL
}

round=0
for variant in checkpoint again parallel lz4; do
  for _ in $(seq 1 "$ROUNDS"); do
    round=$((round + 1))
    case $variant in
      checkpoint)
        "${PSQL[@]}" -c CHECKPOINT
        echo "after CHECKPOINT:     $(upsert $round 0 1)" ;;
      again)
        # The previous round's pages are dirty since the checkpoint: no full-page images
        # where this round's rows share them; a round with the same rows shares all.
        "${PSQL[@]}" -c CHECKPOINT
        upsert $round 0 1 >/dev/null
        echo "no checkpoint:        $(upsert $round 0 1)" ;;
      parallel)
        "${PSQL[@]}" -c CHECKPOINT
        halves=$(mktemp)
        upsert $round 0 2 >"$halves.0" & upsert $round 1 2 >"$halves.1" & wait
        echo "2 connections, lower: $(cat "$halves.0")"
        echo "               upper: $(cat "$halves.1")"
        rm -f "$halves" "$halves.0" "$halves.1" ;;
      lz4)
        "${PSQL[@]}" -c CHECKPOINT
        echo "wal_compression=lz4:  $(upsert $round 0 1 "SET LOCAL wal_compression = lz4;")" ;;
    esac
  done
done

# Into a temporary file, never into the server's directory; on this machine both are on one disk.
dd_file=$(mktemp)
echo "disk ($(df --output=source "$dd_file" | tail -n 1)): $(dd if=/dev/zero of="$dd_file" bs=1M count=512 conv=fdatasync 2>&1 | tail -n 1)"
rm -f "$dd_file"
