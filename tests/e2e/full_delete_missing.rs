//! `full` with `delete_missing: true`, through the real binary on
//! PostgreSQL and SQLite: into an empty destination it only inserts; into
//! a populated one it rewrites the ranges that differ and removes exactly
//! the rows the source lost (also where only the destination has rows
//! left), nothing else. A plain `full` keeps them.

use crate::common::{
    connect, difference, items_providers, run, scalar, sqlite_difference, write_sqlite_datastores,
    RunResult, Schemas, Workspace,
};
use anyhow::Result;
use rusqlite::Connection;

const ROWS: i64 = 30_000;

fn pipeline(name: &str, backend: &str) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: 10000
{providers}column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
  - {{source: views, dest: views, data_type: bigint, hash_column: false}}
strategies:
  - {{name: full, type: full}}
  - {{name: mirror, type: full, delete_missing: true}}
",
        providers = items_providers(backend)
    )
}

/// Rows 5, 6 and 7 go, and every row from 20000 on: the partitions
/// [20000, 30000) and [30000, 40000) are left only in the destination.
/// Five new rows, one name changed.
const FIRST_CHANGES: &str = "DELETE FROM items WHERE id IN (5, 6, 7) OR id >= 20000;
     INSERT INTO items VALUES (40001, 'new', 0), (40002, 'new', 0), (40003, 'new', 0),
       (40004, 'new', 0), (40005, 'new', 0);
     UPDATE items SET name = 'changed' WHERE id = 12345;";

/// Rows deleted by `FIRST_CHANGES`.
const GONE: i64 = 3 + (ROWS - 20000 + 1);

/// A name, and a column outside the row hash: a full run compares every
/// column.
const SECOND_CHANGES: &str = "UPDATE items SET name = 'again' WHERE id = 15000;
     UPDATE items SET views = 9 WHERE id = 16000;";

/// Rows inserted, updated and deleted.
fn writes(r: &RunResult) -> (i64, i64, i64) {
    (
        r.n("rows_inserted"),
        r.n("rows_updated"),
        r.n("rows_deleted"),
    )
}

fn assert_first_mirror_inserts_only(first: &RunResult) {
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(writes(first), (ROWS, 0, 0));
}

/// The plain full run after `FIRST_CHANGES`: upserts, deletes nothing.
fn assert_full_keeps_missing_rows(full: &RunResult) {
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(writes(full), (5, 1, 0));
}

/// The mirror run after `SECOND_CHANGES`.
fn assert_mirror_deletes_exactly_the_missing_rows(mirror: &RunResult) {
    assert_eq!(mirror.code, 0, "{}", mirror.stderr);
    assert_eq!(writes(mirror), (0, 2, GONE));
}

fn assert_nothing_left_to_do(again: &RunResult) {
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_read"), 0);
    assert_eq!(again.n("rows_deleted"), 0);
    assert_eq!(again.n("rows_unchanged"), ROWS - GONE + 5);
}

#[tokio::test]
async fn a_full_run_with_delete_missing_mirrors_the_source_on_postgres() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "full_mirror").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, views bigint);
             INSERT INTO {src} SELECT g, 'name ' || g, 0 FROM generate_series(1, {ROWS}) g;"
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline("full_mirror", "postgres"))?;
    assert_first_mirror_inserts_only(&ws.run("mirror"));
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    let in_source = |sql: &str| sql.replace("items", &src);
    client.batch_execute(&in_source(FIRST_CHANGES)).await?;
    assert_full_keeps_missing_rows(&ws.run("full"));
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        ROWS + 5
    );

    client.batch_execute(&in_source(SECOND_CHANGES)).await?;
    assert_mirror_deletes_exactly_the_missing_rows(&ws.run("mirror"));
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    assert_nothing_left_to_do(&ws.run("mirror"));
    Ok(())
}

#[test]
fn a_full_run_with_delete_missing_mirrors_the_source_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let src = Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(&format!(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, views INTEGER);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ROWS})
         INSERT INTO items SELECT i, 'name ' || i, 0 FROM g;"
    ))
    .unwrap();
    write_sqlite_datastores(dir.path());
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, pipeline("sqlite_mirror", "sqlite")).unwrap();
    let state = dir.path().join("state");
    let same = || sqlite_difference(dir.path(), "items", "id, name, views");
    assert_first_mirror_inserts_only(&run(&p, "mirror", &state));
    assert_eq!(same(), 0);

    src.execute_batch(FIRST_CHANGES).unwrap();
    assert_full_keeps_missing_rows(&run(&p, "full", &state));
    assert_eq!(same(), GONE);

    src.execute_batch(SECOND_CHANGES).unwrap();
    assert_mirror_deletes_exactly_the_missing_rows(&run(&p, "mirror", &state));
    assert_eq!(same(), 0);
    assert_nothing_left_to_do(&run(&p, "mirror", &state));
}
