//! Backend columns written without `data_type` (the spec's audit-columns
//! example) take the type the source table's catalog declares: runs,
//! `config validate` and `config show` agree, and a column whose type
//! cannot be taken is named with the reason.

use crate::common::{connect, difference, run, synchub, Schemas, Workspace};
use anyhow::Result;

/// The spec's audit-columns example as both backends' columns: business
/// columns hashed, audit columns not; no `data_type` anywhere.
fn audit_pipeline(name: &str, kind: &str) -> String {
    let columns = "
      - name: product_id
        hash_column: true
      - name: name
        hash_column: true
      - name: price
        hash_column: true
      - name: category
        hash_column: true
      - name: created_at
        hash_column: false
      - name: created_by
        hash_column: false
      - name: last_viewed_at
        hash_column: false
      - name: view_count
        hash_column: false";
    let dest_columns = columns.replacen(
        "- name: product_id\n",
        "- name: product_id\n        unique_column: true\n",
        1,
    );
    format!(
        "name: {name}
backends:
  - name: source_backend
    type: {kind}
    datastore_name: src
    table: products
    columns:{columns}
  - name: destination_backend
    type: {kind}
    datastore_name: dst
    table: products
    columns:{dest_columns}
strategies:
  - name: full
    type: full
  - name: hash
    type: hash
    primary_partitions: [{{column: product_id, step: 500, data_type: integer}}]
stages:
  - name: data_fetch
    type: data_fetch
    source: {{name: source_backend}}
    destination: {{name: destination_backend}}
  - name: populate
    type: populate
    destination: {{name: destination_backend}}
"
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn audit_columns_take_their_types_from_the_postgres_catalog() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "cat").await?;
    let src = format!("{}.products", s.src);
    let dst = format!("{}.products", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (product_id bigint PRIMARY KEY, name varchar(40), price numeric(12,2),
               category text, created_at timestamptz, created_by text, last_viewed_at timestamp,
               view_count integer);
             INSERT INTO {src} SELECT g, 'product ' || g, g * 1.25, 'c' || (g % 7),
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', 'loader',
               timestamp '2024-06-01 00:00:00' + g * interval '1 second', g % 100
             FROM generate_series(1, 2000) g;"
        ))
        .await?;
    let ws = Workspace::new(&s, &audit_pipeline("cat_pg", "postgres"))?;
    let p = ws.pipeline.to_str().unwrap();

    let shown = synchub(&["config", "show", p, "--output", "json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout)?;
    let typed: Vec<(String, String, String)> = shown["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["dest"].as_str().unwrap().to_string(),
                c["data_type"].as_str().unwrap().to_string(),
                c["data_type_from"].as_str().unwrap_or("config").to_string(),
            )
        })
        .collect();
    let expected = [
        ("product_id", "bigint"),
        ("name", "varchar(40)"),
        ("price", "decimal(12,2)"),
        ("category", "text"),
        ("created_at", "timestamptz"),
        ("created_by", "text"),
        ("last_viewed_at", "timestamp"),
        ("view_count", "int"),
    ];
    assert_eq!(
        typed,
        expected
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string(), "source_catalog".to_string()))
            .collect::<Vec<_>>()
    );
    let validated = synchub(&["config", "validate", p]);
    assert!(validated.status.success(), "{}", stderr(&validated));

    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), 2000);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    let dest_types: Vec<String> = client
        .query(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 ORDER BY a.attnum",
            &[&dst],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        dest_types,
        [
            "bigint",
            "character varying(40)",
            "numeric(12,2)",
            "text",
            "timestamp with time zone",
            "text",
            "timestamp without time zone",
            "integer"
        ]
    );

    // The audit columns are not hashed: their changes alone are not synced.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET view_count = view_count + 1, last_viewed_at = now()::timestamp WHERE product_id <= 100;
             UPDATE {src} SET price = price + 1 WHERE product_id IN (7, 1500);"
        ))
        .await?;
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_updated"), 2, "{:?}", hash.json);
    Ok(())
}

#[test]
fn audit_columns_take_their_types_from_the_sqlite_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let src = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    src.execute_batch(
        "CREATE TABLE products (product_id INTEGER PRIMARY KEY, name VARCHAR(40), price DECIMAL(12,2),
           category TEXT, created_at DATETIME, created_by TEXT, last_viewed_at DATETIME,
           view_count INTEGER);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 1000)
         INSERT INTO products SELECT i, 'product ' || i, i * 1.25, 'c' || (i % 7),
           datetime('2024-01-01', '+' || i || ' minutes'), 'loader',
           datetime('2024-06-01', '+' || i || ' seconds'), i % 100 FROM g;",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
    let p = dir.path().join("products.yaml");
    std::fs::write(&p, audit_pipeline("cat_sqlite", "sqlite")).unwrap();
    let shown = synchub(&["config", "show", p.to_str().unwrap()]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = stdout(&shown);
    assert!(
        shown.contains("data_type: decimal(12,2)\n  data_type_from: source_catalog"),
        "{shown}"
    );
    let state = dir.path().join("state");
    let full = run(&p, "full", &state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), 1000);
    let same = run(&p, "hash", &state);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(same.n("rows_unchanged"), 1000, "{:?}", same.json);
    src.execute_batch("UPDATE products SET view_count = 1000; UPDATE products SET name = 'x' WHERE product_id = 3;")
        .unwrap();
    let changed = run(&p, "hash", &state);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(changed.n("rows_updated"), 1, "{:?}", changed.json);
}

/// A column the source lacks, and one whose type has no SyncHub type: both
/// named at once, with the reason, by `config validate` and `run` alike.
#[tokio::test]
async fn a_type_the_catalog_cannot_give_is_named() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "catbad").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {}.products (product_id bigint PRIMARY KEY, name text, price numeric(12,2),
               category interval, created_at timestamptz, created_by text, last_viewed_at timestamp)",
            s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &audit_pipeline("cat_bad", "postgres"))?;
    let file = ws.pipeline.display();
    let expected = [
        format!("{file}: backends[1].columns[3].data_type: no data_type given, and the source's type of \"category\" (interval) has no SyncHub data_type to take; give data_type"),
        format!("{file}: backends[1].columns[7].data_type: no data_type given, and the source (\"{}\".\"products\") has no column \"view_count\" to take it from; give data_type", s.src),
    ];
    let validated = synchub(&["config", "validate", ws.pipeline.to_str().unwrap()]);
    assert_eq!(validated.status.code(), Some(2));
    assert_eq!(stderr(&validated).lines().collect::<Vec<_>>(), expected);
    let out = ws.run("full");
    assert_eq!(out.code, 2, "{}", out.stderr);
    for line in &expected {
        assert!(out.stderr.contains(line), "{}", out.stderr);
    }
    Ok(())
}
