//! Source columns whose names are not plain identifiers (spaces, quotes,
//! dots, capitals), written in SQL's double quotes, sync on both engines:
//! full, delta on such a cursor, hash with inserts, updates and deletes,
//! partitioned on such a column named bare.

use crate::common::{self, connect, difference, run, scalar, Schemas, Workspace};
use rusqlite::Connection;

/// The columns as the source names them, quoted for SQL.
const SOURCE_COLUMNS: &str = r#""Order Id", "Unit ""Price""", "Ship.Date", "Region""#;
/// The same columns in the destination, in the mapped order.
const DEST_COLUMNS: &str = r#""order id", "unit price", "ship date", "region's""#;

/// `partition_column` names the key bare, as the source does; the delta
/// cursor is quoted (it has a dot).
fn pipeline_yaml(name: &str, backend: &str) -> String {
    format!(
        r#"name: {name}
partition_column: Order Id
partition_step: 400
source_provider:
  data_backend: {{type: {backend}, datastore_name: src, table: "Order Lines"}}
destination_provider:
  data_backend: {{type: {backend}, datastore_name: dst, table: "order lines"}}
column_map:
  - {{source: '"Order Id"', dest: order id, roles: [unique_column], data_type: bigint}}
  - {{source: '"Unit ""Price"""', dest: unit price, data_type: decimal, precision: 10, scale: 2}}
  - {{source: '"Ship.Date"', dest: ship date, data_type: timestamp}}
  - {{source: Region, dest: "region's", data_type: text}}
strategies:
  - {{name: full, type: full}}
  - {{name: delta, type: delta, column: '"Ship.Date"'}}
  - {{name: hash, type: hash}}
"#
    )
}

/// 1,000 rows; ship dates one minute apart.
fn fill_sql(table: &str) -> String {
    format!(
        r#"CREATE TABLE {table} ("Order Id" bigint PRIMARY KEY, "Unit ""Price""" numeric(10,2),
             "Ship.Date" timestamp, "Region" text);
           INSERT INTO {table} SELECT g, g * 1.25, timestamp '2024-03-01' + g * interval '1 minute',
             CASE WHEN g % 3 = 0 THEN NULL ELSE 'r' || (g % 7) END
           FROM generate_series(1, 1000) g;"#
    )
}

/// Three updates moved past every ship date, one insert, two deletes.
fn change_sql(table: &str) -> String {
    format!(
        r#"UPDATE {table} SET "Region" = 'moved', "Ship.Date" = timestamp '2025-01-01' + "Order Id" * interval '1 second'
             WHERE "Order Id" IN (10, 500, 999);
           INSERT INTO {table} VALUES (1001, 9.99, timestamp '2025-02-01', 'new');
           DELETE FROM {table} WHERE "Order Id" IN (3, 777);"#
    )
}

fn counts(r: &common::RunResult) -> [i64; 4] {
    assert_eq!(r.code, 0, "{}", r.stderr);
    ["rows_inserted", "rows_updated", "rows_deleted", "rows_read"].map(|k| r.n(k))
}

/// Rows that differ between the source and the destination table.
async fn differing_rows(
    client: &tokio_postgres::Client,
    src: &str,
    dst: &str,
) -> anyhow::Result<i64> {
    difference(
        client,
        &format!("(SELECT {SOURCE_COLUMNS} FROM {src}) s"),
        &format!("(SELECT {DEST_COLUMNS} FROM {dst}) d"),
    )
    .await
}

#[tokio::test]
async fn quoted_source_columns_sync_on_postgres() -> anyhow::Result<()> {
    let client = connect().await?;
    let schemas = Schemas::create(&client, "quoted_names").await?;
    let src = format!(r#"{}."Order Lines""#, schemas.src);
    let dst = format!(r#"{}."order lines""#, schemas.dst);
    client.batch_execute(&fill_sql(&src)).await?;
    let ws = Workspace::new(&schemas, &pipeline_yaml("quoted_pg", "postgres"))?;
    assert_eq!(counts(&ws.run("full")), [1000, 0, 0, 1000]);
    assert_eq!(differing_rows(&client, &src, &dst).await?, 0);
    // The first delta reads every row and finds them equal.
    assert_eq!(counts(&ws.run("delta")), [0, 0, 0, 1000]);

    client.batch_execute(&change_sql(&src)).await?;
    // Delta sees the three moved rows (and the one on the watermark, equal)
    // and the insert, never the deletes.
    assert_eq!(counts(&ws.run("delta")), [1, 3, 0, 5]);
    assert_eq!(
        scalar(&client, &format!("SELECT count(*) FROM {dst}")).await?,
        1001
    );
    assert_eq!(counts(&ws.run("hash")), [0, 0, 2, 0]);
    assert_eq!(differing_rows(&client, &src, &dst).await?, 0);
    Ok(())
}

#[test]
fn quoted_source_columns_sync_on_sqlite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = Connection::open(dir.path().join("source.db"))?;
    src.execute_batch(
        r#"CREATE TABLE "Order Lines" ("Order Id" INTEGER PRIMARY KEY, "Unit ""Price""" TEXT,
             "Ship.Date" TEXT, "Region" TEXT);
           WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 1000)
           INSERT INTO "Order Lines" SELECT i, printf('%d.%02d', i * 125 / 100, i * 125 % 100),
             strftime('%Y-%m-%d %H:%M:%S', '2024-03-01', '+' || i || ' minutes') || '.000000',
             CASE WHEN i % 3 = 0 THEN NULL ELSE 'r' || (i % 7) END
           FROM g;"#,
    )?;
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )?;
    let pipeline = dir.path().join("lines.yaml");
    std::fs::write(&pipeline, pipeline_yaml("quoted_sqlite", "sqlite"))?;
    let state = dir.path().join("state");
    let same = || -> anyhow::Result<i64> {
        let c = Connection::open(dir.path().join("source.db"))?;
        c.execute(
            "ATTACH ?1 AS w",
            [dir.path().join("warehouse.db").to_str().unwrap()],
        )?;
        let s = format!(r#"SELECT {SOURCE_COLUMNS} FROM main."Order Lines""#);
        let d = format!(r#"SELECT {DEST_COLUMNS} FROM w."order lines""#);
        Ok(c.query_row(
            &format!(
                "SELECT (SELECT count(*) FROM ({s} EXCEPT {d})) + (SELECT count(*) FROM ({d} EXCEPT {s}))"
            ),
            [],
            |r| r.get(0),
        )?)
    };

    assert_eq!(counts(&run(&pipeline, "full", &state)), [1000, 0, 0, 1000]);
    assert_eq!(same()?, 0);
    src.execute_batch(
        r#"UPDATE "Order Lines" SET "Region" = 'moved' WHERE "Order Id" IN (10, 500, 999);
           INSERT INTO "Order Lines" VALUES (1001, '9.99', '2025-02-01 00:00:00.000000', 'new');
           DELETE FROM "Order Lines" WHERE "Order Id" IN (3, 777);"#,
    )?;
    assert_eq!(counts(&run(&pipeline, "hash", &state)), [1, 3, 2, 4]);
    assert_eq!(same()?, 0);
    Ok(())
}

#[tokio::test]
async fn an_unknown_quoted_source_column_is_named_as_written() -> anyhow::Result<()> {
    let client = connect().await?;
    let schemas = Schemas::create(&client, "quoted_unknown").await?;
    client
        .batch_execute(&fill_sql(&format!(r#"{}."Order Lines""#, schemas.src)))
        .await?;
    let yaml = pipeline_yaml("quoted_unknown", "postgres")
        .replace(r#"'"Unit ""Price"""'"#, r#"'"Unit Price"'"#);
    let ws = Workspace::new(&schemas, &yaml)?;
    let r = ws.run("full");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.json["error"].as_str(),
        Some(format!(
            r#"source column "Unit Price" (mapped to dest "unit price") does not exist in "{}"."Order Lines": fix the column name in the pipeline or add the column to the source"#,
            schemas.src
        ).as_str())
    );
    Ok(())
}

/// A joined table's quoted columns (`o."Order Id"`, `c."Full Name"`), and a
/// change in the joined table found by hash.
#[tokio::test]
async fn quoted_columns_of_joined_tables_sync() -> anyhow::Result<()> {
    let client = connect().await?;
    let schemas = Schemas::create(&client, "quoted_join").await?;
    client
        .batch_execute(&format!(
            r#"CREATE TABLE {s}."Orders" ("Order Id" int PRIMARY KEY, "Cust Id" int, total numeric(10,2));
               CREATE TABLE {s}."Customers" ("Cust Id" int PRIMARY KEY, "Full Name" text);
               INSERT INTO {s}."Customers" SELECT g, 'cust ' || g FROM generate_series(1, 50) g;
               INSERT INTO {s}."Orders" SELECT g, g % 50 + 1, g * 1.5 FROM generate_series(1, 3000) g;"#,
            s = schemas.src
        ))
        .await?;
    let yaml = r#"name: quoted_join
partition_step: 1000
partition_column: order_id
source_provider:
  data_backend:
    type: postgres
    datastore_name: src
    table: Orders
    alias: o
    join:
      - {table: Customers, alias: c, on: 'o."Cust Id" = c."Cust Id"', type: left}
destination_provider:
  data_backend: {type: postgres, datastore_name: dst, table: enriched}
column_map:
  - {source: 'o."Order Id"', dest: order_id, roles: [unique_column], data_type: int}
  - {source: 'c."Full Name"', dest: name, data_type: text}
  - {source: o.total, dest: total, data_type: decimal, precision: 10, scale: 2}
strategies:
  - {name: full, type: full}
  - {name: hash, type: hash}
"#;
    let ws = Workspace::new(&schemas, yaml)?;
    assert_eq!(counts(&ws.run("full")), [3000, 0, 0, 3000]);
    // Customer 7 has the 60 orders whose id is 6 modulo 50.
    client
        .batch_execute(&format!(
            r#"UPDATE {}."Customers" SET "Full Name" = 'renamed' WHERE "Cust Id" = 7"#,
            schemas.src
        ))
        .await?;
    assert_eq!(counts(&ws.run("hash")), [0, 60, 0, 60]);
    let joined = format!(
        r#"(SELECT o."Order Id", c."Full Name", o.total FROM {s}."Orders" o LEFT JOIN {s}."Customers" c ON o."Cust Id" = c."Cust Id") j"#,
        s = schemas.src
    );
    let dst = format!("{}.enriched", schemas.dst);
    assert_eq!(difference(&client, &joined, &dst).await?, 0);
    Ok(())
}
