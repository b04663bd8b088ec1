//! Hash syncs over a composite key without partition columns, on
//! PostgreSQL and SQLite: the comparison cuts ranges of the first key
//! column, then of the next, and the changed rows are fetched by key, so
//! the rows read are the rows written.

use std::path::Path;

use crate::common::{
    connect, difference, items_providers, run, scalar, sqlite_checkpoints_like, sqlite_difference,
    write_sqlite_datastores, Schemas, Workspace,
};
use anyhow::Result;
use rusqlite::Connection;

const TENANTS: i64 = 3;
const IDS: i64 = 40_000;
const ROWS: i64 = TENANTS * IDS;

/// `items` keyed on (tenant, id), no partitioning.
fn pipeline(name: &str, backend: &str) -> String {
    format!(
        "name: {name}
{providers}column_map:
  - {{source: tenant, dest: tenant, roles: [unique_column], data_type: int}}
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
  - {{source: qty, dest: qty, data_type: bigint}}
strategies:
  - {{name: full, type: full}}
  - {{name: hash, type: hash}}
",
        providers = items_providers(backend)
    )
}

/// Three updates, two inserts and two deletes, in every tenant; the
/// deleted ids are the first and the last of tenant 1.
fn changes_sql(table: &str) -> String {
    format!(
        "UPDATE {table} SET name = 'changed'
           WHERE tenant = 1 AND id = 17 OR tenant = 2 AND id = 20000 OR tenant = 3 AND id = 39999;
         INSERT INTO {table} VALUES (2, 40001, 'new', 1), (3, 0, 'new', 2);
         DELETE FROM {table} WHERE tenant = 1 AND id IN (1, 40000);"
    )
}

/// What the hash run after `changes_sql` must report.
fn assert_changes_counted(hash: &crate::common::RunResult) {
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_inserted"), 2);
    assert_eq!(hash.n("rows_updated"), 3);
    assert_eq!(hash.n("rows_deleted"), 2);
    assert_eq!(hash.n("rows_unchanged"), ROWS - 3 - 2);
    // Only the new and changed rows are read from the source (the issue's
    // bound is ten times the rows changed; by key it is exactly them).
    assert_eq!(hash.n("rows_read"), 5);
}

#[tokio::test]
async fn a_composite_key_hash_reads_only_the_rows_it_writes_on_postgres() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hash_composite").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (tenant int NOT NULL, id bigint NOT NULL, name text, qty bigint,
               PRIMARY KEY (tenant, id));
             INSERT INTO {src} SELECT t, g, 'name ' || g, g * t
             FROM generate_series(1, {TENANTS}) t, generate_series(1, {IDS}) g;"
        ))
        .await?;
    let ws = Workspace::new(&s, &pipeline("hash_composite", "postgres"))?;
    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), ROWS);

    client.batch_execute(&changes_sql(&src)).await?;
    let hash = ws.run("hash");
    assert_changes_counted(&hash);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    // Each tenant is one value of the first key column with 40,000 rows:
    // it was cut by the next key column, `id`, and compared in buckets of
    // ids (a leaf with a checkpoint of its own).
    for tenant in 1..=TENANTS {
        let leaves = scalar(
            &client,
            &format!(
                "SELECT count(*) FROM {}._synchub_checkpoints WHERE strategy = 'hash' \
                 AND partition_id LIKE 'tenant_{tenant}_{}__id_%'",
                s.dst,
                tenant + 1
            ),
        )
        .await?;
        assert_eq!(leaves, 1, "tenant {tenant}");
    }

    let again = ws.run("hash");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_read"), 0);
    assert_eq!(again.n("rows_unchanged"), ROWS);

    client.batch_execute(&last_tenant_gone_sql(&src)).await?;
    assert_last_tenant_deleted(&ws.run("hash"));
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}

/// The last tenant leaves the source: its rows are past the source's
/// extent of the first key column and only the destination has them.
fn last_tenant_gone_sql(table: &str) -> String {
    format!("DELETE FROM {table} WHERE tenant = {TENANTS}")
}

/// Tenant 3's 40,000 rows, less none (39999 was updated), plus (3, 0).
fn assert_last_tenant_deleted(hash: &crate::common::RunResult) {
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!((hash.n("rows_deleted"), hash.n("rows_read")), (IDS + 1, 0));
}

#[test]
fn a_composite_key_hash_reads_only_the_rows_it_writes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let src = Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(&format!(
        "CREATE TABLE items (tenant INTEGER NOT NULL, id INTEGER NOT NULL, name TEXT, qty INTEGER,
           PRIMARY KEY (tenant, id));
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {IDS}),
           t(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM t WHERE j < {TENANTS})
         INSERT INTO items SELECT j, i, 'name ' || i, i * j FROM t, g;"
    ))
    .unwrap();
    write_sqlite_datastores(dir.path());
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, pipeline("sqlite_composite", "sqlite")).unwrap();
    let state = dir.path().join("state");
    let full = run(&p, "full", &state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), ROWS);

    src.execute_batch(&changes_sql("items")).unwrap();
    let hash = run(&p, "hash", &state);
    assert_changes_counted(&hash);
    assert_eq!(same(dir.path()), 0);
    for tenant in 1..=TENANTS {
        assert_eq!(
            sqlite_checkpoints_like(dir.path(), &format!("tenant_{tenant}_{}__id_%", tenant + 1)),
            1,
            "tenant {tenant}"
        );
    }
    let again = run(&p, "hash", &state);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("rows_read"), 0);
    assert_eq!(again.n("rows_unchanged"), ROWS);

    src.execute_batch(&last_tenant_gone_sql("items")).unwrap();
    assert_last_tenant_deleted(&run(&p, "hash", &state));
    assert_eq!(same(dir.path()), 0);
}

fn same(dir: &Path) -> i64 {
    sqlite_difference(dir, "items", "tenant, id, name, qty")
}
