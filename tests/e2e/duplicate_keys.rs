//! Two source rows with the same unique_column values: the destination
//! holds one row a key, so the run fails naming the key instead of keeping
//! one of the two, into an empty destination (written straight into) and
//! into a populated one (staged and merged), on both engines.

use crate::common::{self, connect, items_providers, run, scalar, Schemas, Workspace};
use anyhow::Result;

fn pipeline(backend: &str) -> String {
    format!(
        "name: duplicate_keys
{}column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
strategies:
  - {{name: full, type: full}}
",
        items_providers(backend)
    )
}

const FIX: &str = "the unique_column values must identify one row each; \
    remove the duplicates from the source or map columns that are unique as unique_column";

/// The run failed (exit 1) and its last line is `error: populate: {rows}: {FIX}`.
#[track_caller]
fn assert_duplicate_error(out: &common::RunResult, rows: &str) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.lines().last().unwrap_or_default(),
        format!("error: populate: {rows}: {FIX}")
    );
}

#[test]
fn sqlite_duplicate_source_keys_fail_the_run_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
    let src = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(
        "CREATE TABLE items (id INTEGER, name TEXT);
         INSERT INTO items VALUES (1, 'a'), (2, 'b'), (2, 'c'), (3, 'd');",
    )
    .unwrap();
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, pipeline("sqlite")).unwrap();
    let state = dir.path().join("state");
    let dst_rows = || -> i64 {
        rusqlite::Connection::open(dir.path().join("warehouse.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap()
    };

    // Empty destination: written straight into the table.
    let empty = run(&p, "full", &state);
    assert_duplicate_error(&empty, "two source rows have the key id=2");
    assert_eq!(dst_rows(), 0, "the failed partition is rolled back");

    // Populated destination: staged, then merged.
    rusqlite::Connection::open(dir.path().join("warehouse.db"))
        .unwrap()
        .execute("INSERT INTO items VALUES (9, 'x')", [])
        .unwrap();
    let populated = run(&p, "full", &state);
    assert_duplicate_error(&populated, "two source rows have the key id=2");
    assert_eq!(dst_rows(), 1);
}

#[tokio::test]
async fn postgres_duplicate_source_keys_fail_the_run_naming_the_key() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "dupkeys").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint, name text);
             INSERT INTO {src}.items VALUES (1, 'a'), (2, 'b'), (2, 'c'), (3, 'd');",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline("postgres"))?;
    let dst = format!("{}.items", s.dst);

    // Empty destination: COPY into the table, which reports the key.
    let empty = ws.run("full");
    assert_duplicate_error(&empty, "two source rows have the key id=2");
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        0
    );

    // Populated destination: the merge only knows a row was hit twice.
    client
        .batch_execute(&format!("INSERT INTO {dst} VALUES (9, 'x')"))
        .await?;
    let populated = ws.run("full");
    assert_duplicate_error(
        &populated,
        "two source rows of partition all have the same key",
    );
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        1
    );
    Ok(())
}
