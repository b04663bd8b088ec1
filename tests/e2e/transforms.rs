//! Transforms in a row-level sync: a column's value computed by a SQL
//! expression over the source row (`transform:` in the simple form, `expr`
//! on a data_fetch column in the stage form), evaluated by the source's SQL.
//! Every strategy writes exactly what the expression gives, and a hash run
//! compares the computed values.

use anyhow::Result;
use rusqlite::Connection;

use crate::common::{connect, difference, synchub, write_sqlite_datastores, Schemas, Workspace};

const ROWS: i64 = 2_000;

fn pg_pipeline(transform: &str) -> String {
    format!(
        "name: orders_with_tax
source_provider:
  data_backend: {{type: postgres, datastore_name: src, table: orders}}
destination_provider:
  data_backend: {{type: postgres, datastore_name: dst, table: orders}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: total_amount, dest: total_amount, data_type: decimal, precision: 12, scale: 2}}
  - {{source: total_amount, dest: total_with_tax, data_type: decimal, precision: 12, scale: 2, transform: \"{transform}\"}}
  - {{source: name, dest: shout, data_type: text, transform: \"upper(name) || '!'\"}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
  - {{name: full, type: full}}
  - {{name: delta, type: delta, column: updated_at}}
  - {{name: hash, type: hash}}
"
    )
}

#[tokio::test]
async fn a_transform_is_computed_by_postgres_for_every_strategy() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "transform_pg").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.orders (id bigint PRIMARY KEY, total_amount numeric(12,2), name text,
               updated_at timestamptz NOT NULL);
             INSERT INTO {src}.orders SELECT g, g * 0.37, CASE WHEN g % 50 = 0 THEN NULL ELSE 'order ' || g END,
               timestamptz '2024-05-01 00:00:00+00' + g * interval '1 minute'
             FROM generate_series(1, {ROWS}) g;",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(&s, &pg_pipeline("round(total_amount * 1.1, 2)"))?;
    let expected = format!(
        "(SELECT id, total_amount, round(total_amount * 1.1, 2), upper(name) || '!', updated_at FROM {}.orders) AS e",
        s.src
    );
    let got = format!(
        "(SELECT id, total_amount, total_with_tax, shout, updated_at FROM {}.orders) AS g",
        s.dst
    );

    let full = ws.run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), ROWS, "{}", full.json);
    assert_eq!(difference(&client, &expected, &got).await?, 0);

    client
        .batch_execute(&format!(
            "UPDATE {}.orders SET total_amount = total_amount + 1, updated_at = timestamptz '2024-08-01 00:00:00+00'
             WHERE id % 200 = 3",
            s.src
        ))
        .await?;
    let delta = ws.run("delta");
    assert_eq!(delta.code, 0, "{}", delta.stderr);
    assert_eq!(delta.n("rows_updated"), ROWS / 200, "{}", delta.json);
    assert_eq!(difference(&client, &expected, &got).await?, 0);

    // A change only the transform's value shows (the name, updated_at
    // left alone): the hash run compares the computed values.
    client
        .batch_execute(&format!(
            "UPDATE {}.orders SET name = 'renamed ' || id WHERE id IN (7, 8, 9)",
            s.src
        ))
        .await?;
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_updated"), 3, "{}", hash.json);
    assert_eq!(difference(&client, &expected, &got).await?, 0);
    let again = ws.run("hash");
    assert_eq!(again.n("rows_updated"), 0, "{}", again.json);
    Ok(())
}

#[test]
fn an_expr_column_is_computed_by_sqlite_in_the_stage_form() {
    let dir = tempfile::tempdir().unwrap();
    write_sqlite_datastores(dir.path());
    let source = Connection::open(dir.path().join("source.db")).unwrap();
    source
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, price REAL, label TEXT);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 500)
             INSERT INTO items SELECT n, n % 9, n * 0.5, 'item ' || n FROM g;",
        )
        .unwrap();
    let pipeline = dir.path().join("items.yaml");
    std::fs::write(
        &pipeline,
        r#"name: items_computed
backends:
  - name: source_backend
    type: sqlite
    datastore_name: src
    table: items
    columns:
      - {name: id, data_type: bigint}
      - {name: qty, data_type: integer}
      - {name: price, data_type: float}
      - {name: label, data_type: text}
  - name: destination_backend
    type: sqlite
    datastore_name: dst
    table: items
    columns:
      - {name: id, data_type: bigint, unique_column: true}
      - {name: qty, data_type: integer}
      - {name: value, data_type: float}
      - {name: tag, data_type: text}
strategies:
  - {name: full, type: full}
  - {name: hash, type: hash}
stages:
  - name: data_fetch
    type: data_fetch
    source:
      name: source_backend
      columns:
        - {name: id}
        - {name: qty}
        - {name: value, expr: "qty * price"}
        - {name: tag, expr: "substr(label, 6) || '#' || qty"}
    destination: {name: destination_backend}
"#,
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = |strategy: &str| crate::common::run(&pipeline, strategy, &state);
    let differing = || {
        let c = Connection::open(dir.path().join("source.db")).unwrap();
        c.execute_batch(&format!(
            "ATTACH '{}' AS w",
            dir.path().join("warehouse.db").display()
        ))
        .unwrap();
        c.query_row(
            "SELECT (SELECT count(*) FROM (SELECT id, qty, qty * price, substr(label, 6) || '#' || qty FROM items
                     EXCEPT SELECT id, qty, value, tag FROM w.items))
                  + (SELECT count(*) FROM (SELECT id, qty, value, tag FROM w.items
                     EXCEPT SELECT id, qty, qty * price, substr(label, 6) || '#' || qty FROM items))",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    let full = run("full");
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), 500, "{}", full.json);
    assert_eq!(differing(), 0);
    source
        .execute_batch("UPDATE items SET price = price + 1 WHERE id % 100 = 1")
        .unwrap();
    let hash = run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_updated"), 5, "{}", hash.json);
    assert_eq!(differing(), 0);
}

/// What is refused, and how each refusal names the field and the fix.
#[test]
fn transforms_that_cannot_run_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: postgres, connection: {host: 127.0.0.1, port: 5432, user: postgres, dbname: test}}\n  dst: {type: postgres, connection: {host: 127.0.0.1, port: 5432, user: postgres, dbname: test}}\n  lake: {type: delta, connection: {uri: lake}}\n",
    )
    .unwrap();
    let cases = [
        (
            pg_pipeline("lambda x: round(x['total_amount'] * 1.1, 2)"),
            "column_map[2].transform: column \"total_with_tax\": Python lambdas are not evaluated; write the value as a SQL expression over the source's columns, e.g. round(total_amount * 1.1, 2)",
        ),
        (
            pg_pipeline("sum(total_amount)"),
            "column_map[2].transform: column \"total_with_tax\" calls an aggregate function in a row-level sync; sync_type: aggregate with group_by computes groups",
        ),
        (
            pg_pipeline("total_amount * random()"),
            "column_map[2].transform: column \"total_with_tax\": random() gives another value on every call, so the row would differ on every run; compute it from the row's columns",
        ),
        (
            pg_pipeline("round(total_amount * 1.1, 2)")
                .replacen("type: postgres, datastore_name: src", "type: delta, datastore_name: lake", 1),
            "not supported yet: column \"total_with_tax\" computed by an expression from a delta source (PostgreSQL, MySQL and SQLite sources compute it in their SQL); compute it before the data lands there",
        ),
    ];
    // A Delta datastore exists only in a build with Delta Lake.
    let cases = cases
        .into_iter()
        .filter(|(yaml, _)| cfg!(feature = "delta") || !yaml.contains("type: delta"));
    for (yaml, error) in cases {
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, &yaml).unwrap();
        let out = synchub(&["config", "validate", p.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{yaml}");
        assert!(stderr.contains(error), "expected {error:?} in:\n{stderr}");
    }
}
