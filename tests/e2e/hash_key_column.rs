//! A destination `hash_key: true` column (stage form, with the source's
//! `virtual: true` + `hash_key: true` column) stores the row hash: full,
//! delta and hash runs write it, and the hash strategy reads it back from the
//! destination instead of re-hashing the destination rows.

use std::collections::HashMap;
use std::path::Path;

use crate::common::{self, connect, run, scalar, Schemas};
use anyhow::Result;
use connectors::rowhash::{hash_hex, row_hash};

const ROWS: i64 = 20_000;

/// Rows fetched from the source (new or changed rows only, for a hash run).
fn fetched(r: &common::RunResult) -> i64 {
    r.json["operators"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["operator"] == "fetch"))
        .and_then(|o| o["rows_out"].as_i64())
        .unwrap_or(-1)
}

/// `N` for NULL, else `<length in characters>:<text>` (see `connectors::rowhash`).
/// The canonical text of (id, name, amount, updated_at): text values as
/// `<chars>:<text>`, the timestamp as PostgreSQL's binary form in hex (16
/// digits of microseconds since 2000-01-01), NULL as `N`.
fn canonical(values: &[Option<String>]) -> String {
    let (texts, micros) = values.split_at(values.len() - 1);
    let mut out: String = texts
        .iter()
        .map(|v| match v {
            None => "N".to_string(),
            Some(t) => format!("{}:{t}", t.chars().count()),
        })
        .collect();
    match micros[0]
        .as_deref()
        .map(|m| m.parse::<i64>().expect("micros"))
    {
        None => out.push('N'),
        Some(m) => out.push_str(&format!("{:016x}", (m - 946_684_800_000_000) as u64)),
    }
    out
}

fn stage_pipeline(name: &str, kind: &str) -> String {
    format!(
        "name: {name}
sync_type: row-level
backends:
  - name: source_backend
    type: {kind}
    datastore_name: src
    table: items
    columns:
      - {{name: id, data_type: bigint}}
      - {{name: name, data_type: text}}
      - {{name: amount, data_type: decimal, precision: 12, scale: 2}}
      - {{name: updated_at, data_type: timestamptz}}
      - {{name: views, data_type: int}}
      - {{name: checksum, data_type: bigint, hash_key: true, virtual: true}}
  - name: destination_backend
    type: {kind}
    datastore_name: dst
    table: items
    columns:
      - {{name: id, data_type: bigint, unique_column: true}}
      - {{name: name, data_type: text}}
      - {{name: amount, data_type: decimal, precision: 12, scale: 2}}
      - {{name: updated_at, data_type: timestamptz}}
      - {{name: views, data_type: int, hash_column: false}}
      - {{name: checksum, data_type: bigint, hash_key: true}}
strategies:
  - name: full
    type: full
    primary_partitions: [{{column: id, step: 5000, data_type: integer}}]
  - name: delta
    type: delta
    column: updated_at
  - name: hash
    type: hash
    primary_partitions: [{{column: id, step: 5000, data_type: integer}}]
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

/// How a checksum column stores the row hash, as text: a bigint's decimal
/// digits, or a varchar's 16 hex digits.
#[derive(Clone, Copy)]
enum Stored {
    Bigint,
    Hex,
}

impl Stored {
    fn text(self, hash: i64) -> String {
        match self {
            Stored::Bigint => hash.to_string(),
            Stored::Hex => hash_hex(hash),
        }
    }

    /// The pipeline with its checksum columns of this type.
    fn pipeline(self, name: &str, kind: &str) -> String {
        match self {
            Stored::Bigint => stage_pipeline(name, kind),
            Stored::Hex => stage_pipeline(name, kind).replace(
                "{name: checksum, data_type: bigint,",
                "{name: checksum, data_type: varchar, length: 16,",
            ),
        }
    }
}

/// Rows whose stored checksum differs from the row hash of the source
/// values, computed here with `connectors::rowhash::row_hash` over the
/// canonical text; also fails when a row is missing on either side.
async fn pg_wrong_checksums(
    client: &tokio_postgres::Client,
    s: &Schemas,
    stored_as: Stored,
) -> Result<Vec<i64>> {
    let rows = client
        .query(
            &format!(
                "SELECT coalesce(s.id, d.id), s.id::text, s.name, s.amount::text,
                   (extract(epoch FROM s.updated_at) * 1000000)::bigint::text, d.checksum::text
                 FROM {}.items s FULL JOIN {}.items d USING (id) ORDER BY 1",
                s.src, s.dst
            ),
            &[],
        )
        .await?;
    let mut wrong = Vec::new();
    for r in &rows {
        let texts: Vec<Option<String>> = (1..5).map(|i| r.get(i)).collect();
        let stored: Option<String> = r.get(5);
        let expected = stored_as.text(row_hash(canonical(&texts).as_bytes()));
        if texts[0].is_none() || stored != Some(expected) {
            wrong.push(r.get(0));
        }
    }
    Ok(wrong)
}

#[tokio::test]
async fn stored_hash_column_on_postgres() -> Result<()> {
    stored_hash_on_postgres(Stored::Bigint).await
}

/// The spec's column-level example stores the hash in a varchar column:
/// 16 hex digits, read back as the same 64 bits.
#[tokio::test]
async fn varchar_hash_key_on_postgres() -> Result<()> {
    stored_hash_on_postgres(Stored::Hex).await
}

async fn stored_hash_on_postgres(stored_as: Stored) -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "hk").await?;
    let src = format!("{}.items", s.src);
    let dst = format!("{}.items", s.dst);
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2),
               updated_at timestamptz NOT NULL, views int);
             INSERT INTO {src} SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'näme ' || g END,
               g * 0.01, timestamptz '2024-01-01 00:00:00+00' + g * interval '1.25 second', 0
             FROM generate_series(1, {ROWS}) g;"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("datastores.yaml"), s.datastores_yaml())?;
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, stored_as.pipeline("hk_pg", "postgres"))?;
    let state = dir.path().join("state");

    // Full: the destination is created with a bigint checksum, filled with
    // the row hash of each row.
    let full = run(&p, "full", &state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), ROWS);
    let ty: String = client
        .query_one(
            "SELECT data_type FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'checksum'",
            &[&s.dst],
        )
        .await?
        .get(0);
    let expected_ty = match stored_as {
        Stored::Bigint => "bigint",
        Stored::Hex => "character varying",
    };
    assert_eq!(ty, expected_ty);
    assert_eq!(
        pg_wrong_checksums(&client, &s, stored_as).await?,
        Vec::<i64>::new()
    );

    // Unchanged: checksums match, nothing is read.
    let same = run(&p, "hash", &state);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(same.n("rows_read"), 0);
    assert_eq!(same.n("rows_unchanged"), ROWS);

    // A few changed rows: exactly those are rewritten, with new checksums.
    let before: HashMap<i64, String> = client
        .query(
            &format!("SELECT id, checksum::text FROM {dst} WHERE id IN (10, 4321, 15000, 19999)"),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    client
        .batch_execute(&format!(
            "UPDATE {src} SET amount = amount + 1 WHERE id IN (10, 4321);
             UPDATE {src} SET name = NULL WHERE id = 15000;
             UPDATE {src} SET name = '' WHERE id = 19999;
             UPDATE {src} SET views = 5 WHERE id = 123;"
        ))
        .await?;
    let changed = run(&p, "hash", &state);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(fetched(&changed), 4, "{:?}", changed.json);
    assert_eq!(changed.n("rows_updated"), 4);
    assert_eq!(changed.n("rows_inserted") + changed.n("rows_deleted"), 0);
    for (id, old) in &before {
        let new: String = client
            .query_one(
                &format!("SELECT checksum::text FROM {dst} WHERE id = {id}"),
                &[],
            )
            .await?
            .get(0);
        assert_ne!(new, *old, "checksum of row {id} must change");
    }
    // `views` is not hashed: its change alone is not synced.
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT views::bigint FROM {dst} WHERE id = 123")
        )
        .await?,
        0
    );
    assert_eq!(
        pg_wrong_checksums(&client, &s, stored_as).await?,
        Vec::<i64>::new()
    );

    // The destination side uses the stored column: a corrupted checksum on
    // an otherwise identical row is found and rewritten with the right hash.
    let checksum_777 = format!("SELECT checksum::text FROM {dst} WHERE id = 777");
    let right: String = client.query_one(&checksum_777, &[]).await?.get(0);
    let corrupt = match stored_as {
        Stored::Bigint => "checksum + 1",
        // Not 16 lowercase hex digits: read as no hash at all.
        Stored::Hex => "upper(checksum)",
    };
    client
        .batch_execute(&format!(
            "UPDATE {dst} SET checksum = {corrupt} WHERE id = 777;
             UPDATE {dst} SET checksum = NULL WHERE id = 17777;"
        ))
        .await?;
    let repaired = run(&p, "hash", &state);
    assert_eq!(repaired.code, 0, "{}", repaired.stderr);
    assert_eq!(fetched(&repaired), 2, "{:?}", repaired.json);
    assert_eq!(repaired.n("rows_updated"), 2);
    let repaired_777: String = client.query_one(&checksum_777, &[]).await?.get(0);
    assert_eq!(repaired_777, right);
    assert_eq!(
        pg_wrong_checksums(&client, &s, stored_as).await?,
        Vec::<i64>::new()
    );

    // Delta runs write it too.
    client
        .batch_execute(&format!(
            "UPDATE {src} SET amount = -amount, updated_at = updated_at + interval '1 day'
             WHERE id % 1000 = 1;
             INSERT INTO {src} VALUES ({ROWS} + 1, 'new', 3.5, timestamptz '2030-01-01 00:00:00+00', 1);"
        ))
        .await?;
    let delta = run(&p, "delta", &state);
    assert_eq!(delta.code, 0, "{}", delta.stderr);
    assert!(delta.n("rows_updated") >= 20, "{:?}", delta.json);
    assert_eq!(
        pg_wrong_checksums(&client, &s, stored_as).await?,
        Vec::<i64>::new()
    );
    let after_delta = run(&p, "hash", &state);
    assert_eq!(after_delta.code, 0, "{}", after_delta.stderr);
    assert_eq!(after_delta.n("rows_read"), 0, "{:?}", after_delta.json);
    Ok(())
}

#[tokio::test]
async fn hash_key_must_hold_64_bits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )?;
    let p = dir.path().join("items.yaml");
    std::fs::write(
        &p,
        stage_pipeline("hk_bad", "sqlite").replace(
            "{name: checksum, data_type: bigint, hash_key: true}",
            "{name: checksum, data_type: varchar, length: 8, hash_key: true}",
        ),
    )?;
    let out = run(&p, "full", &dir.path().join("state"));
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("backends[1].columns[5].data_type")
            && out.stderr.contains(
                "hash_key column \"checksum\" stores the 64-bit row hash: its data_type must be bigint, or varchar/text to store it as 16 hex digits, not varchar"
            ),
        "{}",
        out.stderr
    );
    Ok(())
}

fn sqlite_wrong_checksums(dir: &Path, stored_as: Stored) -> Vec<i64> {
    let c = rusqlite::Connection::open(dir.join("source.db")).unwrap();
    c.execute_batch(&format!(
        "ATTACH '{}' AS w",
        dir.join("warehouse.db").display()
    ))
    .unwrap();
    // Values as the pipeline reads them: decimal(12,2) at its scale and the
    // timestamps as epoch microseconds, computed here from their stored form.
    let mut stmt = c
        .prepare(
            "SELECT s.id, s.name, printf('%.2f', s.amount),
               CAST(round((julianday(s.updated_at) - 2440587.5) * 86400.0) AS INTEGER) * 1000000,
               CAST(d.checksum AS TEXT)
             FROM main.items s LEFT JOIN w.items d ON d.id = s.id ORDER BY s.id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .unwrap();
    let mut wrong = Vec::new();
    for row in rows {
        let (id, name, amount, micros, stored) = row.unwrap();
        let texts = [
            Some(id.to_string()),
            name,
            Some(amount),
            Some(micros.to_string()),
        ];
        if stored != Some(stored_as.text(row_hash(canonical(&texts).as_bytes()))) {
            wrong.push(id);
        }
    }
    wrong
}

#[test]
fn stored_hash_column_on_sqlite() {
    stored_hash_on_sqlite(Stored::Bigint);
}

#[test]
fn varchar_hash_key_on_sqlite() {
    stored_hash_on_sqlite(Stored::Hex);
}

fn stored_hash_on_sqlite(stored_as: Stored) {
    let dir = tempfile::tempdir().unwrap();
    let src = rusqlite::Connection::open(dir.path().join("source.db")).unwrap();
    // Whole seconds, so the expected epoch microseconds are exact.
    src.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount REAL,
           updated_at TEXT NOT NULL, views INTEGER);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
         INSERT INTO items SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'item ' || i END,
           i * 0.25, datetime('2024-01-01', '+' || i || ' seconds') || '+00:00', 0 FROM g;",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
    let p = dir.path().join("items.yaml");
    std::fs::write(&p, stored_as.pipeline("hk_sqlite", "sqlite")).unwrap();
    let state = dir.path().join("state");

    let full = run(&p, "full", &state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), 3000);
    assert_eq!(
        sqlite_wrong_checksums(dir.path(), stored_as),
        Vec::<i64>::new()
    );

    let same = run(&p, "hash", &state);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(same.n("rows_read"), 0, "{:?}", same.json);

    src.execute_batch("UPDATE items SET name = 'changed' WHERE id IN (3, 2500);")
        .unwrap();
    let w = rusqlite::Connection::open(dir.path().join("warehouse.db")).unwrap();
    let corrupt = match stored_as {
        Stored::Bigint => "checksum - 1",
        Stored::Hex => "substr(checksum, 2) || '0'",
    };
    w.execute_batch(&format!(
        "UPDATE items SET checksum = {corrupt} WHERE id = 1234;"
    ))
    .unwrap();
    let changed = run(&p, "hash", &state);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(fetched(&changed), 3, "{:?}", changed.json);
    assert_eq!(changed.n("rows_updated"), 3);
    assert_eq!(
        sqlite_wrong_checksums(dir.path(), stored_as),
        Vec::<i64>::new()
    );
}
