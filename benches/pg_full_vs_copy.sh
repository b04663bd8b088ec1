#!/usr/bin/env bash
# Full sync PostgreSQL -> PostgreSQL against the raw binary COPY pipe between the
# same databases, alternating baseline and candidate in one run; prints rows/s,
# the ratio to the pipe, and synchub's peak RSS. Until the benchmark harness of
# benches/ lands, this is how the issue notes' figures are made.
#   benches/pg_full_vs_copy.sh [ROWS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
ROUNDS=${2:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/synchub-target}"
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/synchub"
PSQL=(psql -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 -q)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench_src CASCADE; DROP SCHEMA IF EXISTS bench_dst CASCADE; DROP SCHEMA IF EXISTS bench_pipe CASCADE" 2>/dev/null' EXIT

DDL="(id bigint PRIMARY KEY, qty int NOT NULL, category int NOT NULL, price numeric(12,2) NOT NULL,
      title text NOT NULL, created_at timestamptz NOT NULL, note text, active boolean NOT NULL)"
"${PSQL[@]}" <<SQL
DROP SCHEMA IF EXISTS bench_src CASCADE; CREATE SCHEMA bench_src;
CREATE TABLE bench_src.items $DDL;
INSERT INTO bench_src.items SELECT g, (g % 1000)::int, (g % 37)::int, round((g % 100000) / 7.0, 2),
  repeat(md5(g::text), 1 + (g % 3)), timestamptz '2024-01-01' + g * interval '1.5 second',
  CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END, g % 2 = 0
FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE bench_src.items;
SQL

cat > "$WORK/datastores.yaml" <<YAML
datastores:
  src: {type: postgres, connection: {host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: bench_src}}
  dst: {type: postgres, connection: {host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: bench_dst}}
YAML
cat > "$WORK/items.yaml" <<YAML
name: bench_items
partition_column: id
partition_step: 100000
source_provider: {data_backend: {type: postgres, datastore_name: src, table: items}}
destination_provider: {data_backend: {type: postgres, datastore_name: dst, table: items}}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: qty, dest: qty, data_type: int}
  - {source: category, dest: category, data_type: int}
  - {source: price, dest: price, data_type: decimal, precision: 12, scale: 2}
  - {source: title, dest: title, data_type: text}
  - {source: created_at, dest: created_at, data_type: timestamptz}
  - {source: note, dest: note, data_type: text}
  - {source: active, dest: active, data_type: bool}
strategies:
  - {name: full, type: full, page_size: 20000}
  - {name: hash, type: hash, page_size: 20000}
YAML

now() { date +%s.%N; }
for round in $(seq 1 "$ROUNDS"); do
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench_pipe CASCADE; CREATE SCHEMA bench_pipe; CREATE TABLE bench_pipe.items $DDL; CHECKPOINT"
  t0=$(now)
  "${PSQL[@]}" -c "COPY (SELECT * FROM bench_src.items) TO STDOUT (FORMAT binary)" \
    | "${PSQL[@]}" -c "COPY bench_pipe.items FROM STDIN (FORMAT binary)"
  pipe=$(echo "$(now) - $t0" | bc)

  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench_dst CASCADE; CHECKPOINT"
  rm -rf "$WORK/state"
  t0=$(now)
  /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" run "$WORK/items.yaml" --state-dir "$WORK/state" --output json > "$WORK/run.json"
  full=$(echo "$(now) - $t0" | bc)

  "${PSQL[@]}" -c "CHECKPOINT"
  t0=$(now)
  /usr/bin/time -f "%M" -o "$WORK/rss2" "$BIN" run "$WORK/items.yaml" --state-dir "$WORK/state" --output json > "$WORK/run2.json"
  again=$(echo "$(now) - $t0" | bc)

  # Hash over the unchanged table against one bare checksum query per side,
  # run in parallel (the floor a checksum-based comparison can reach).
  CK="SELECT count(*), sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint) FROM"
  t0=$(now)
  "${PSQL[@]}" -Atc "$CK bench_src.items t" >/dev/null & "${PSQL[@]}" -Atc "$CK bench_dst.items t" >/dev/null & wait
  bare=$(echo "$(now) - $t0" | bc)
  t0=$(now)
  "$BIN" run "$WORK/items.yaml" --strategy hash --state-dir "$WORK/state" --output json > "$WORK/hash.json"
  hash=$(echo "$(now) - $t0" | bc)
  printf 'round %d, hash over unchanged table: %.2fs vs two bare checksum scans in parallel %.2fs (%.2fx), %s\n' \
    "$round" "$hash" "$bare" "$(echo "$hash / $bare" | bc -l)" "$(grep -o '"rows_read":[0-9]*' "$WORK/hash.json")"

  printf 'round %d, %d rows: copy pipe %.2fs (%.0f rows/s) | synchub full into empty %.2fs (%.0f rows/s, %.2fx pipe, peak RSS %d MB) | into identical table %.2fs (%.0f rows/s, %.2fx pipe, peak RSS %d MB, %s)\n' \
    "$round" "$ROWS" "$pipe" "$(echo "$ROWS / $pipe" | bc -l)" \
    "$full" "$(echo "$ROWS / $full" | bc -l)" "$(echo "$pipe / $full" | bc -l)" "$(( $(cat "$WORK/rss") / 1024 ))" \
    "$again" "$(echo "$ROWS / $again" | bc -l)" "$(echo "$pipe / $again" | bc -l)" "$(( $(cat "$WORK/rss2") / 1024 ))" \
    "$(grep -o '"rows_unchanged":[0-9]*' "$WORK/run2.json")"
done
