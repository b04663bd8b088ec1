//! The incremental acceptance scenario on SQLite (source and destination
//! files): delta, then hash, over 300,000 rows with inserts, updates
//! (one only to a non-hash column), deletes and rows moved onto the exact
//! watermark value.

use std::path::Path;

use crate::common::{
    move_rows_sql, moved_rows_pipeline, run, sqlite_difference as difference,
    write_sqlite_datastores as write_datastores,
};
use rusqlite::Connection;

const ROWS: i64 = 300_000;

fn setup(dir: &Path) -> std::path::PathBuf {
    let src = Connection::open(dir.join("source.db")).unwrap();
    src.execute_batch(&format!(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, views INTEGER,
           updated_at TEXT NOT NULL);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ROWS})
         INSERT INTO events SELECT i, CASE WHEN i % 13 = 0 THEN NULL ELSE 'event ' || i END,
           printf('%d.%02d', i / 100, i % 100), 0,
           strftime('%Y-%m-%d %H:%M:%f', '2024-01-01', '+' || i || ' seconds') || '000'
         FROM g;"
    ))
    .unwrap();
    write_datastores(dir);
    let p = dir.join("events.yaml");
    std::fs::write(
        &p,
        "name: sqlite_events
partition_column: id
partition_step: 50000
source_provider:
  data_backend: {type: sqlite, datastore_name: src, table: events}
destination_provider:
  data_backend: {type: sqlite, datastore_name: dst, table: events}
column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: name, dest: name, data_type: text}
  - {source: amount, dest: amount, data_type: decimal, precision: 12, scale: 2}
  - {source: views, dest: views, data_type: int, hash_column: false}
  - {source: updated_at, dest: updated_at, data_type: timestamp}
strategies:
  - {name: delta, type: delta, column: updated_at}
  - {name: hash, type: hash}
",
    )
    .unwrap();
    p
}

#[test]
fn delta_then_hash_make_sqlite_destination_equal_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let p = setup(dir.path());
    let state = dir.path().join("state");
    let all = "id, name, amount, views, updated_at";

    let first = run(&p, "delta", &state);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_inserted"), ROWS);
    assert_eq!(difference(dir.path(), "events", all), 0);

    let src = Connection::open(dir.path().join("source.db")).unwrap();
    let watermark: String = src
        .query_row("SELECT max(updated_at) FROM events", [], |r| r.get(0))
        .unwrap();
    src.execute_batch(&format!(
        "UPDATE events SET amount = '1.00', updated_at = '2030-01-01 00:00:00.000001' WHERE id BETWEEN 1000 AND 1999;
         UPDATE events SET name = 'on the watermark', updated_at = '{watermark}' WHERE id BETWEEN 5 AND 9;
         UPDATE events SET views = 7 WHERE id = 4242;
         INSERT INTO events SELECT id + {ROWS}, 'new', '2.50', 0, '2030-01-02 00:00:00.000000' FROM events WHERE id <= 300;
         DELETE FROM events WHERE id BETWEEN 100000 AND 100049;"
    ))
    .unwrap();

    let delta = run(&p, "delta", &state);
    assert_eq!(delta.code, 0, "{}", delta.stderr);
    assert_eq!(delta.n("rows_inserted"), 300);
    // 1,000 updated rows, 5 moved onto the watermark; the row that already
    // held the watermark is read again and left alone.
    assert_eq!(delta.n("rows_updated"), 1005);
    assert_eq!(delta.n("rows_unchanged"), 1);
    assert_eq!(delta.n("rows_deleted"), 0);

    // Hash finds the deletes; the views-only change is not written.
    let hash = run(&p, "hash", &state);
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_deleted"), 50);
    assert_eq!(hash.n("rows_inserted") + hash.n("rows_updated"), 0);
    assert_eq!(
        difference(dir.path(), "events", "id, name, amount, updated_at"),
        0
    );
    assert_eq!(
        difference(dir.path(), "events", all),
        2,
        "row 4242's views differ, on purpose"
    );
}

#[test]
fn a_watermark_past_every_row_warns_and_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = setup(dir.path());
    let state = dir.path().join("state");
    assert_eq!(run(&p, "delta", &state).code, 0);
    // The source is rebuilt with older data: the stored watermark is now in
    // its future.
    let src = Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch("UPDATE events SET updated_at = '2020-01-01 00:00:00.000000'")
        .unwrap();
    let again = run(&p, "delta", &state);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_read"), 0);
    assert!(
        again.stderr.contains(
            "warning: the stored watermark 2024-01-04T11:20:00 of updated_at is newer than the newest source row (2020-01-01T00:00:00); no rows past it were read. If the source was rebuilt, run `synchub state reset sqlite_events --strategy delta`"
        ),
        "{}",
        again.stderr
    );
}

/// As on PostgreSQL (`hash_sync.rs`): rows whose partition column
/// changed are deleted from the range they left only if still there.
#[test]
fn a_row_moved_to_another_bucket_range_is_kept_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let src = Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, name TEXT);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 250000)
         INSERT INTO items SELECT i, i, 'name ' || i FROM g;",
    )
    .unwrap();
    write_datastores(dir.path());
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, moved_rows_pipeline("sqlite_moved", "sqlite")).unwrap();
    let state = dir.path().join("state");
    let first = run(&p, "hash", &state);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_inserted"), 250_000);
    src.execute_batch(&move_rows_sql("items")).unwrap();
    let hash = run(&p, "hash", &state);
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(difference(dir.path(), "items", "id, grp, name"), 0);
    assert_eq!(hash.n("rows_updated"), 5000);
    assert_eq!(hash.n("rows_deleted"), 1);
    assert_eq!(hash.n("rows_inserted"), 1);
}

/// A hash run fetches the changed rows by key (the integer key bound as one
/// JSON array), not whole partitions filtered afterwards.
#[test]
fn a_sqlite_hash_run_reads_only_the_rows_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let p = setup(dir.path());
    let state = dir.path().join("state");
    let first = run(&p, "delta", &state);
    assert_eq!(first.code, 0, "{}", first.stderr);

    // One row in 10,000, over all six partitions.
    let src = Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch("UPDATE events SET name = 'changed' WHERE id % 10000 = 7")
        .unwrap();
    let hash = run(&p, "hash", &state);
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_updated"), 30);
    assert_eq!(hash.n("rows_read"), 30);
    assert_eq!(hash.n("rows_unchanged"), ROWS - 30);
    assert_eq!(
        difference(dir.path(), "events", "id, name, amount, views, updated_at"),
        0
    );
}
