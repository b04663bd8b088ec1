//! Aggregate syncs: the spec's worked example (orders per user and day),
//! run for real on SQLite and PostgreSQL with each engine, and a re-computed
//! table compared with a fresh GROUP BY over the source.

use std::path::Path;

use crate::common::{connect, run, write_sqlite_datastores, RunResult, Schemas, Workspace};
use anyhow::Result;
use rusqlite::Connection;

/// The spec's `user_daily_orders_aggregate`, its backends on datastores
/// `src` and `dst` (tables in each datastore's default schema), with
/// `aggregate_engine: <engine>`.
fn pipeline_yaml(backend: &str, engine: &str) -> String {
    format!(
        r#"name: user_daily_orders_aggregate
sync_type: aggregate
aggregate_engine: {engine}
max_concurrent_partitions: 2
strategies:
  - name: delta
    type: delta
    primary_partitions:
      - {{column: updated_at, step: 2, step_unit: hour, data_type: datetime}}
    delta_partitions:
      - {{column: user_id, type: value, step: -1, data_type: integer}}
      - {{column: order_date, step: 1, step_unit: day, data_type: datetime}}
  - name: full
    type: full
backends:
  - name: source_backend
    type: {backend}
    datastore_name: src
    table: orders
    columns:
      - {{name: user_id, data_type: integer}}
      - {{name: amount, data_type: decimal, precision: 12, scale: 2}}
      - {{name: discount, data_type: decimal, precision: 12, scale: 2}}
      - {{name: order_date, data_type: datetime}}
      - {{name: updated_at, data_type: datetime}}
      - {{name: checksum_int, data_type: bigint, hash_key: true, virtual: true}}
  - name: destination_backend
    type: {backend}
    datastore_name: dst
    table: user_daily_orders_aggregate
    columns:
      - {{name: user_id, data_type: integer, unique_column: true}}
      - {{name: date, data_type: date, unique_column: true}}
      - {{name: amount, data_type: decimal, precision: 14, scale: 2}}
      - {{name: discount, data_type: decimal, precision: 14, scale: 2}}
      - {{name: num_orders, data_type: integer}}
      - {{name: last_updated_at, data_type: datetime}}
      - {{name: checksum_int, data_type: bigint, hash_key: true}}
      - {{name: order_date, expr: date, data_type: date, virtual: true}}
stages:
  - {{name: partition_generator, type: partition, source: {{name: source_backend}}, destination: {{name: destination_backend}}}}
  - {{name: change_detection, type: change_detection, source: {{name: source_backend}}, destination: {{name: destination_backend}}}}
  - name: data_fetch
    type: data_fetch
    source:
      name: source_backend
      columns:
        - {{name: user_id}}
        - {{name: date, expr: "CAST(order_date AS DATE)"}}
        - {{name: num_orders, expr: "count(1)"}}
        - {{name: amount, expr: "sum(amount)"}}
        - {{name: discount, expr: "sum(discount)"}}
        - {{name: last_updated_at, expr: "max(updated_at)"}}
      group_by: [user_id, date]
    destination: {{name: destination_backend}}
  - {{name: dedup, type: dedup, applicable_on: delta, config: {{dedup_keys: [user_id, date]}}}}
  - {{name: data_batcher, type: batcher, config: {{target_batch_size: 100}}}}
  - {{name: populate, type: populate, destination: {{name: destination_backend}}}}
"#
    )
}

/// The spec's three orders.
const ORDERS: &str = "CREATE TABLE orders (order_id integer PRIMARY KEY, user_id integer,
       amount decimal(12,2), discount decimal(12,2), order_date timestamp, updated_at timestamp);
     INSERT INTO orders VALUES
       (1, 101, 50.00, 0, '2024-01-15 09:00:00', '2024-01-15 10:00:00'),
       (2, 101, 30.00, 0, '2024-01-15 09:30:00', '2024-01-15 11:00:00'),
       (3, 102, 75.00, 5, '2024-01-15 12:00:00', '2024-01-15 12:00:00');";

/// The spec's update of order 2.
const UPDATE: &str =
    "UPDATE orders SET amount = 40.00, updated_at = '2024-01-15 14:00:00' WHERE order_id = 2";

fn counts(r: &RunResult) -> (i64, i64, i64, i64) {
    assert_eq!(r.code, 0, "{}", r.stderr);
    (
        r.n("groups_recomputed"),
        r.n("rows_inserted"),
        r.n("rows_updated"),
        r.n("groups_deleted"),
    )
}

fn sqlite_rows(dir: &Path) -> Vec<String> {
    let c = Connection::open(dir.join("warehouse.db")).unwrap();
    let mut st = c
        .prepare(
            "SELECT user_id || '|' || date || '|' || num_orders || '|' || amount || '|' || discount || '|' || last_updated_at
             FROM user_daily_orders_aggregate ORDER BY user_id, date",
        )
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn spec_example_on_sqlite(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_sqlite_datastores(dir.path());
    Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch(ORDERS)
        .unwrap();
    let p = dir.path().join("orders.yaml");
    std::fs::write(&p, pipeline_yaml("sqlite", engine)).unwrap();
    let state = dir.path().join("state");

    let first = run(&p, "delta", &state);
    assert_eq!(counts(&first), (2, 2, 0, 0), "{}", first.json);
    assert_eq!(
        sqlite_rows(dir.path()),
        [
            "101|2024-01-15|2|80.00|0.00|2024-01-15 11:00:00.000000",
            "102|2024-01-15|1|75.00|5.00|2024-01-15 12:00:00.000000",
        ]
    );

    Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch(UPDATE)
        .unwrap();
    let second = run(&p, "delta", &state);
    // 101's day is touched and updated; 102's is touched only by its row on
    // the watermark (a delta re-reads those, for rows committed late), and
    // found equal.
    assert_eq!(counts(&second), (2, 0, 1, 0), "{}", second.json);
    assert_eq!(second.n("rows_unchanged"), 1);
    assert_eq!(
        sqlite_rows(dir.path()),
        [
            "101|2024-01-15|2|90.00|0.00|2024-01-15 14:00:00.000000",
            "102|2024-01-15|1|75.00|5.00|2024-01-15 12:00:00.000000",
        ]
    );

    // Nothing changed since: only the group of the row on the watermark
    // (a delta re-reads those, for rows committed late) is re-computed,
    // and found equal.
    let third = run(&p, "delta", &state);
    assert_eq!(counts(&third), (1, 0, 0, 0), "{}", third.json);
    assert_eq!(third.n("rows_unchanged"), 1);
    // A full run re-computes every group and rewrites none.
    let full = run(&p, "full", &state);
    assert_eq!(counts(&full), (2, 0, 0, 0), "{}", full.json);
    assert_eq!(full.n("rows_unchanged"), 2);

    // A delete leaves no changed row for a delta to see; a full run
    // replaces the groups, so 102's day, whose only order is gone, goes.
    Connection::open(dir.path().join("source.db"))
        .unwrap()
        .execute_batch("DELETE FROM orders WHERE user_id = 102")
        .unwrap();
    let delta = run(&p, "delta", &state);
    assert_eq!(counts(&delta), (1, 0, 0, 0), "{}", delta.json);
    assert_eq!(sqlite_rows(dir.path()).len(), 2);
    let full = run(&p, "full", &state);
    assert_eq!(counts(&full), (1, 0, 0, 1), "{}", full.json);
    assert_eq!(
        sqlite_rows(dir.path()),
        ["101|2024-01-15|2|90.00|0.00|2024-01-15 14:00:00.000000"]
    );
}

#[test]
fn spec_worked_example_on_sqlite_with_the_source_engine() {
    spec_example_on_sqlite("source");
}

#[test]
fn spec_worked_example_on_sqlite_with_datafusion() {
    spec_example_on_sqlite("datafusion");
}

async fn spec_example_on_postgres(prefix: &str, engine: &str) -> Result<()> {
    let client = connect().await?;
    let schemas = Schemas::create(&client, prefix).await?;
    client
        .batch_execute(&format!("SET search_path TO {}; {ORDERS}", schemas.src))
        .await?;
    let ws = Workspace::new(&schemas, &pipeline_yaml("postgres", engine))?;
    let table = format!("{}.user_daily_orders_aggregate", schemas.dst);
    let rows = || async {
        let rows = client
            .query(
                &format!(
                    "SELECT format('%s|%s|%s|%s|%s|%s', user_id, date, num_orders, amount, discount, last_updated_at)
                     FROM {table} ORDER BY user_id, date"
                ),
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    // The row version of 102's group: a rewrite would give it a new one.
    let version_102 = || async {
        client
            .query_one(
                &format!("SELECT xmin::text FROM {table} WHERE user_id = 102"),
                &[],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
    };

    let first = ws.run("delta");
    assert_eq!(counts(&first), (2, 2, 0, 0), "{}", first.json);
    assert_eq!(
        rows().await,
        [
            "101|2024-01-15|2|80.00|0.00|2024-01-15 11:00:00",
            "102|2024-01-15|1|75.00|5.00|2024-01-15 12:00:00",
        ]
    );
    let before = version_102().await;

    client
        .batch_execute(&format!("SET search_path TO {}; {UPDATE}", schemas.src))
        .await?;
    let second = ws.run("delta");
    // As on SQLite: 102's day is re-computed for its row on the watermark,
    // found equal and not written.
    assert_eq!(counts(&second), (2, 0, 1, 0), "{}", second.json);
    assert_eq!(second.n("rows_unchanged"), 1);
    assert_eq!(
        rows().await,
        [
            "101|2024-01-15|2|90.00|0.00|2024-01-15 14:00:00",
            "102|2024-01-15|1|75.00|5.00|2024-01-15 12:00:00",
        ]
    );
    assert_eq!(version_102().await, before, "102's group was rewritten");

    let full = ws.run("full");
    assert_eq!(counts(&full), (2, 0, 0, 0), "{}", full.json);
    assert_eq!(version_102().await, before, "an equal group was rewritten");

    // An order deleted: a full run replaces the groups, so the day that
    // lost it is re-computed and the one that lost its only order goes.
    client
        .batch_execute(&format!(
            "SET search_path TO {}; DELETE FROM orders WHERE order_id IN (1, 3)",
            schemas.src
        ))
        .await?;
    let full = ws.run("full");
    assert_eq!(counts(&full), (1, 0, 1, 1), "{}", full.json);
    assert_eq!(
        rows().await,
        ["101|2024-01-15|1|40.00|0.00|2024-01-15 14:00:00"]
    );
    Ok(())
}

#[tokio::test]
async fn spec_worked_example_on_postgres_with_the_source_engine() -> Result<()> {
    spec_example_on_postgres("agg_src_engine", "source").await
}

#[tokio::test]
async fn spec_worked_example_on_postgres_with_datafusion() -> Result<()> {
    spec_example_on_postgres("agg_df_engine", "datafusion").await
}
