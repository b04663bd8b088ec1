//! PostgreSQL into a local Delta Lake table and back: full, delta and hash
//! runs with inserts, updates and deletes between them; the Delta table is
//! read back here through deltalake and DataFusion and compared value by
//! value with the source. A run killed between a partition's Delta commit
//! and its checkpoint resumes, and the replayed partition is skipped by its
//! `txn` action.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use deltalake::datafusion::prelude::SessionContext;

use crate::common::{connect, difference, run, Schemas, Workspace};

pub(crate) const ROWS: i64 = 5_000;
pub(crate) const STEP: i64 = 1_000; // 6 partitions: 0..1000 up to 5000..6000

/// The items table's columns, cast to text in both systems the same way:
/// decimals as written, timestamps as microseconds since the epoch.
const PG_TEXT: &str = "id::text, qty::text, price::text, title, \
     (extract(epoch from updated_at) * 1000000)::bigint::text";
const DF_TEXT: &str = "CAST(id AS VARCHAR), CAST(qty AS VARCHAR), CAST(price AS VARCHAR), title, \
     CAST(CAST(updated_at AS BIGINT) AS VARCHAR)";
/// The same in DuckDB, for the independent reader.
pub(crate) const DUCKDB_TEXT: &str =
    "CAST(id AS VARCHAR), CAST(qty AS VARCHAR), CAST(price AS VARCHAR), \
     title, CAST(epoch_us(updated_at) AS VARCHAR)";

pub(crate) fn pipeline_yaml(name: &str, from: (&str, &str), to: (&str, &str)) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: {STEP}
source_provider:
  data_backend: {{type: {}, datastore_name: {}, table: items}}
destination_provider:
  data_backend: {{type: {}, datastore_name: {}, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: price, dest: price, data_type: decimal, precision: 12, scale: 2}}
  - {{source: title, dest: title, data_type: text}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
  - {{name: full, type: full, page_size: 500}}
  - {{name: hash, type: hash, page_size: 500}}
  - {{name: delta, type: delta, column: updated_at, page_size: 500}}
",
        from.0, from.1, to.0, to.1
    )
}

/// A PostgreSQL source of `ROWS` items (some titles empty, some NULL) and a
/// workspace whose `lake` datastore is a folder of Delta tables.
async fn setup(prefix: &str) -> Result<(tokio_postgres::Client, Schemas, Workspace)> {
    setup_with(prefix, "{type: delta, connection: {uri: lake}}").await
}

/// The same, with the `lake` datastore written as `lake` (a YAML mapping).
pub(crate) async fn setup_with(
    prefix: &str,
    lake: &str,
) -> Result<(tokio_postgres::Client, Schemas, Workspace)> {
    let client = connect().await?;
    let s = Schemas::create(&client, prefix).await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, qty int, price numeric(12,2), title text,
               updated_at timestamptz NOT NULL);
             INSERT INTO {src}.items SELECT g, g % 13, g * 0.25,
               CASE WHEN g % 97 = 0 THEN NULL WHEN g % 89 = 0 THEN '' ELSE 'item ' || g || ' – ünï' END,
               timestamptz '2024-06-01 00:00:00.123456+00' + g * interval '1 second'
             FROM generate_series(1, {ROWS}) g;
             CREATE SCHEMA {dst};",
            src = s.src,
            dst = s.dst
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        &pipeline_yaml(prefix, ("postgres", "src"), ("delta", "lake")),
    )?;
    let datastores = format!("{}  lake: {lake}\n", s.datastores_yaml());
    std::fs::write(ws.dir.path().join("datastores.yaml"), datastores)?;
    Ok((client, s, ws))
}

fn table_dir(ws: &Workspace) -> PathBuf {
    ws.dir.path().join("lake").join("items")
}

/// Every row of the Delta table at `dir` as text, sorted.
async fn delta_rows(dir: &Path) -> Result<Vec<String>> {
    let mut rows = delta_sql(dir, &format!("SELECT {DF_TEXT} FROM items")).await?;
    rows.sort();
    Ok(rows)
}

/// Every row of a PostgreSQL `items` table as text, sorted.
async fn pg_rows(client: &tokio_postgres::Client, table: &str) -> Result<Vec<String>> {
    let rows = client
        .query(&format!("SELECT {PG_TEXT} FROM {table}"), &[])
        .await?;
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            (0..5)
                .map(|i| {
                    r.get::<_, Option<String>>(i)
                        .unwrap_or_else(|| "\\N".into())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    Ok(out)
}

async fn assert_lake_equals_source(
    client: &tokio_postgres::Client,
    s: &Schemas,
    ws: &Workspace,
    context: &str,
) -> Result<()> {
    let want = pg_rows(client, &format!("{}.items", s.src)).await?;
    let have = delta_rows(&table_dir(ws))
        .await
        .context("reading the Delta table")?;
    assert_eq!(have.len(), want.len(), "{context}: row counts differ");
    let first_difference = have.iter().zip(&want).find(|(h, w)| h != w);
    assert_eq!(first_difference, None, "{context}: rows differ");
    assert_eq!(
        independent_checksum(ws)?,
        pg_checksum(client, &format!("{}.items", s.src)).await?,
        "{context}: the independent reader disagrees"
    );
    Ok(())
}

/// Python with the independent reader's packages (`delta_reader-requirements.txt`,
/// pinned): a virtualenv under the target folder, made again when the
/// requirements change.
pub(crate) fn reader_python() -> Result<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let requirements = std::fs::read(here.join("delta_reader-requirements.txt"))?;
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("delta-reader-venv");
    let stamp = venv.join("synchub-requirements.txt");
    let python = venv.join("bin").join("python");
    // Tests run in processes of their own: one makes the venv, the others
    // wait for it.
    let lock = std::fs::File::create(venv.with_extension("lock"))?;
    lock.lock()?;
    if std::fs::read(&stamp).ok().as_deref() != Some(requirements.as_slice()) {
        let made = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
        anyhow::ensure!(made.success(), "python3 -m venv failed");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(here.join("delta_reader-requirements.txt"))
            .status()?;
        anyhow::ensure!(
            installed.success(),
            "pip install of the reader's packages failed"
        );
        std::fs::write(&stamp, &requirements)?;
    }
    Ok(python)
}

/// Row count and checksum of the Delta table as Python's `deltalake` (which
/// files are live) and DuckDB (their values) read it: see delta_reader.py.
fn independent_checksum(ws: &Workspace) -> Result<String> {
    reader_checksum(table_dir(ws).as_os_str(), None)
}

/// The reader's count and checksum of the table at `table` (a folder or an
/// `s3://` URI, opened with `storage_options`).
pub(crate) fn reader_checksum(
    table: &std::ffi::OsStr,
    storage_options: Option<&serde_json::Value>,
) -> Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/delta_reader.py");
    let mut reader = Command::new(reader_python()?);
    reader.arg(script).arg(table).arg(DUCKDB_TEXT);
    if let Some(options) = storage_options {
        reader.env("DELTA_READER_STORAGE_OPTIONS", options.to_string());
    }
    let out = reader.output()?;
    anyhow::ensure!(
        out.status.success(),
        "delta_reader.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The same count and checksum computed by PostgreSQL over `table`.
pub(crate) async fn pg_checksum(client: &tokio_postgres::Client, table: &str) -> Result<String> {
    let text = PG_TEXT
        .split(", ")
        .map(|c| format!("coalesce({c}, '\\N')"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = client
        .query_one(
            &format!(
                "SELECT count(*)::text || ' ' || (coalesce(sum(
                   ('x' || substr(encode(sha256(convert_to(concat_ws('|', {text}), 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint::numeric
                   + 18446744073709551616), 0) % 18446744073709551616)::text
                 FROM {table}"
            ),
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The `txn` actions in the table's log: (app id, commit version).
fn txn_actions(ws: &Workspace) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(table_dir(ws).join("_delta_log"))? {
        let path = entry?.path();
        let Some(version) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        for line in std::fs::read_to_string(&path)?.lines() {
            let action: serde_json::Value = serde_json::from_str(line)?;
            if let Some(app) = action["txn"]["appId"].as_str() {
                out.push((app.to_string(), version));
            }
        }
    }
    out.sort_by_key(|(_, v)| *v);
    Ok(out)
}

#[tokio::test]
async fn postgres_into_delta_full_delta_and_hash_keep_the_table_equal() -> Result<()> {
    let (client, s, ws) = setup("lake_sync").await?;
    let src = format!("{}.items", s.src);

    let first = ws.run("full");
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.n("rows_inserted"), ROWS);
    assert_lake_equals_source(&client, &s, &ws, "first full load").await?;
    // One commit, one txn, per partition holding rows.
    assert_eq!(txn_actions(&ws)?.len() as i64, ROWS / STEP + 1);

    // A second full compares checksums with the Delta table read back, and
    // finds nothing to write.
    let again = ws.run("full");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.n("rows_inserted") + again.n("rows_updated") + again.n("rows_deleted"),
        0
    );

    client
        .batch_execute(&format!(
            "UPDATE {src} SET qty = qty + 100, title = NULL, updated_at = updated_at + interval '2 days'
               WHERE id BETWEEN 10 AND 19;
             UPDATE {src} SET title = '', updated_at = updated_at + interval '2 days' WHERE id = 4000;
             INSERT INTO {src} SELECT g, 7, 1.5, 'new ' || g, timestamptz '2024-06-05 00:00:00+00' + g * interval '1 microsecond'
               FROM generate_series({ROWS} + 1, {ROWS} + 20) g;"
        ))
        .await?;
    let delta = ws.run("delta");
    assert_eq!(delta.code, 0, "{}", delta.stderr);
    assert_eq!(delta.n("rows_updated"), 11, "{}", delta.json);
    assert_eq!(delta.n("rows_inserted"), 20, "{}", delta.json);
    assert_lake_equals_source(&client, &s, &ws, "after delta").await?;

    // Deletes, and changes the cursor does not show: only hash sees them.
    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id BETWEEN 2500 AND 2514 OR id = 5003;
             UPDATE {src} SET price = price + 0.01 WHERE id IN (1, 1999, 4999);"
        ))
        .await?;
    let hash = ws.run("hash");
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_deleted"), 16, "{}", hash.json);
    assert_eq!(hash.n("rows_updated"), 3, "{}", hash.json);
    assert_eq!(hash.n("rows_inserted"), 0, "{}", hash.json);
    assert_lake_equals_source(&client, &s, &ws, "after hash").await
}

#[tokio::test]
async fn delta_into_postgres_full_and_hash() -> Result<()> {
    let (client, s, ws) = setup("lake_back").await?;
    let src = format!("{}.items", s.src);
    let load = ws.run("full");
    assert_eq!(load.code, 0, "{}", load.stderr);

    let back = ws.dir.path().join("back.yaml");
    std::fs::write(
        &back,
        pipeline_yaml("lake_back_pg", ("delta", "lake"), ("postgres", "dst")),
    )?;
    let state = ws.dir.path().join("state_back");
    let full = run(&back, "full", &state);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.n("rows_inserted"), ROWS);
    let dst = format!("{}.items", s.dst);
    assert_eq!(difference(&client, &src, &dst).await?, 0);

    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id % 500 = 7;
             UPDATE {src} SET title = 'changed' WHERE id % 700 = 3;
             INSERT INTO {src} VALUES (9000, 1, 2.5, 'late', '2025-01-01 00:00:00+00');"
        ))
        .await?;
    let into_lake = ws.run("hash");
    assert_eq!(into_lake.code, 0, "{}", into_lake.stderr);
    let hash = run(&back, "hash", &state);
    assert_eq!(hash.code, 0, "{}", hash.stderr);
    assert_eq!(hash.n("rows_deleted"), 10, "{}", hash.json);
    assert_eq!(hash.n("rows_updated"), 8, "{}", hash.json);
    assert_eq!(hash.n("rows_inserted"), 1, "{}", hash.json);
    assert_eq!(difference(&client, &src, &dst).await?, 0);
    Ok(())
}

#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn a_partition_replayed_after_a_crash_is_skipped_by_its_txn() -> Result<()> {
    let (client, s, ws) = setup("lake_crash").await?;
    // A first delta reads every partition with no checksum comparison
    // first, so the replayed partition reaches the sink. Killed after the
    // third partition's Delta commit, before its checkpoint.
    let crash = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(&ws.pipeline)
        .args(["--strategy", "delta", "--state-dir"])
        .arg(&ws.state)
        .env("SYNCHUB_LOG", "off")
        .env("SYNCHUB_TEST_CRASH", "before_checkpoint:3")
        .output()?;
    assert!(!crash.status.success(), "the run should have been killed");
    let before = txn_actions(&ws)?;
    assert_eq!(before.len(), 3, "{before:?}");

    let resumed = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(&ws.pipeline)
        .args(["--strategy", "delta", "--state-dir"])
        .arg(&ws.state)
        .args(["--output", "json"])
        .env("SYNCHUB_LOG", "info")
        .output()?;
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&resumed.stdout)?;
    // Two partitions checkpointed before the kill; the third is replayed,
    // found in the Delta log by its txn, and writes nothing.
    assert_eq!(summary["partitions_skipped"], 2, "{summary}");
    assert_eq!(summary["rows_inserted"], ROWS - 3 * STEP + 1, "{summary}");
    let replayed = &before[2].0;
    let after = txn_actions(&ws)?;
    assert!(
        stderr.contains("partition already committed in the Delta log under its txn")
            && stderr.contains(replayed.as_str()),
        "{before:?} {after:?} {}",
        stderr
            .lines()
            .filter(|l| l.contains("synchub") || l.contains("run"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(after.len() as i64, ROWS / STEP + 1, "{after:?}");
    assert_eq!(
        after.iter().filter(|(app, _)| app == replayed).count(),
        1,
        "the replayed partition committed twice: {after:?}"
    );
    assert_eq!(after[..3], before[..]);
    assert_lake_equals_source(&client, &s, &ws, "after the crash and resume").await
}

/// Every type SyncHub maps into Delta, PostgreSQL → Delta → PostgreSQL,
/// value for value; what Delta cannot hold is refused naming the column.
#[tokio::test]
async fn types_round_trip_through_delta_and_time_is_refused() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "lake_types").await?;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {dst};
             CREATE TABLE {src}.kinds (id bigint PRIMARY KEY, d numeric(38,10), ts timestamptz,
               day date, u uuid, j json, b bytea, t text, opens_at time);
             INSERT INTO {src}.kinds VALUES
               (1, 1234567890123456789012345678.0123456789, '2024-02-29 23:59:59.999999+05:30',
                '0001-01-01', '67e55044-10b1-426f-9247-bb680e5fe0c8', '{{\"a\": [1, 2.50]}}',
                '\\x00ff10', 'ünïcødé ✓ 𝄞', '10:00'),
               (2, -0.0000000001, '1970-01-01 00:00:00+00', '9999-12-31', NULL, 'null', '\\x', '', NULL),
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
            src = s.src,
            dst = s.dst
        ))
        .await?;
    let columns = "column_map:
  - {source: id, dest: id, roles: [unique_column], data_type: bigint}
  - {source: d, dest: d, data_type: decimal, precision: 38, scale: 10}
  - {source: ts, dest: ts, data_type: timestamptz}
  - {source: day, dest: day, data_type: date}
  - {source: u, dest: u, data_type: uuid}
  - {source: j, dest: j, data_type: json}
  - {source: b, dest: b, data_type: binary}
  - {source: t, dest: t, data_type: text}
";
    let pipeline = |name: &str, from: (&str, &str), to: (&str, &str), extra: &str| {
        format!(
            "name: {name}
source_provider:
  data_backend: {{type: {}, datastore_name: {}, table: kinds}}
destination_provider:
  data_backend: {{type: {}, datastore_name: {}, table: kinds}}
{columns}{extra}strategies:
  - {{name: full, type: full}}
",
            from.0, from.1, to.0, to.1
        )
    };
    let ws = Workspace::new(
        &s,
        &pipeline("lake_types", ("postgres", "src"), ("delta", "lake"), ""),
    )?;
    std::fs::write(
        ws.dir.path().join("datastores.yaml"),
        format!(
            "{}  lake: {{type: delta, connection: {{uri: lake}}}}\n",
            s.datastores_yaml()
        ),
    )?;
    let into = ws.run("full");
    assert_eq!(into.code, 0, "{}", into.stderr);
    let back = ws.dir.path().join("back.yaml");
    std::fs::write(
        &back,
        pipeline(
            "lake_types_back",
            ("delta", "lake"),
            ("postgres", "dst"),
            "",
        ),
    )?;
    let out = run(&back, "full", &ws.dir.path().join("state_back"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cols = "id, d, ts, day, u, j::text, b, t";
    let differ = crate::common::scalar(
        &client,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT {cols} FROM {src}.kinds EXCEPT ALL SELECT {cols} FROM {dst}.kinds) x)
                  + (SELECT count(*) FROM (SELECT {cols} FROM {dst}.kinds EXCEPT ALL SELECT {cols} FROM {src}.kinds) y)",
            src = s.src,
            dst = s.dst
        ),
    )
    .await?;
    assert_eq!(differ, 0, "values changed on the way through Delta");
    // Empty text and NULL stay apart in the Delta table itself.
    let stored = delta_sql(
        &ws.dir.path().join("lake").join("kinds"),
        "SELECT id, t IS NULL, length(t), u, CAST(d AS VARCHAR) FROM kinds ORDER BY id",
    )
    .await?;
    assert_eq!(
        stored,
        vec![
            "1|false|11|67e55044-10b1-426f-9247-bb680e5fe0c8|1234567890123456789012345678.0123456789",
            "2|false|0|\\N|-0.0000000001",
            "3|true|\\N|\\N|\\N",
        ]
    );

    // A time of day has no Delta type: refused, naming the column.
    std::fs::write(
        &ws.pipeline,
        pipeline(
            "lake_types_time",
            ("postgres", "src"),
            ("delta", "lake"),
            "  - {source: opens_at, dest: opens_at, data_type: time}\n",
        ),
    )?;
    let refused = ws.run("full");
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(
            "column \"opens_at\" is of type time, which Delta Lake cannot hold; map it to a string or a timestamp"
        ),
        "{}",
        refused.stderr
    );
    Ok(())
}

/// The rows of a SQL query over the Delta table at `dir` (registered as its
/// folder's name), each as `|`-joined text.
async fn delta_sql(dir: &Path, sql: &str) -> Result<Vec<String>> {
    let url = url::Url::from_directory_path(dir).map_err(|()| anyhow::anyhow!("bad path"))?;
    let table = deltalake::open_table(url).await?;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("t");
    ctx.register_table(name, table.table_provider().await?)?;
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let values: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    let col = b.column(c);
                    if arrow::array::Array::is_null(col.as_ref(), r) {
                        "\\N".to_string()
                    } else {
                        arrow::util::display::array_value_to_string(col, r).unwrap()
                    }
                })
                .collect();
            rows.push(values.join("|"));
        }
    }
    Ok(rows)
}

/// An aggregate whose source is a Delta table (its rows grouped by
/// DataFusion): a delta run re-computes exactly the groups its window's rows
/// touch, every row of each read from the table, and a hash run catches
/// rows moved between groups and deleted. After each, the groups equal a
/// fresh GROUP BY over the PostgreSQL table the lake was loaded from.
#[tokio::test]
async fn an_aggregate_over_a_delta_source_recomputes_the_touched_groups() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "lake_agg").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.orders (order_id bigint PRIMARY KEY, user_id integer,
               amount numeric(12,2), discount numeric(12,2), order_date timestamp, updated_at timestamp);
             INSERT INTO {src}.orders SELECT g, g % 37, (g % 500) / 10.0 + 1, g % 3,
               timestamp '2024-01-01' + ((g * 7) % 40) * interval '1 day' + (g % 24) * interval '1 hour',
               timestamp '2024-03-01' + g * interval '1 second'
             FROM generate_series(1, 3000) g;",
            src = s.src
        ))
        .await?;
    let ws = Workspace::new(
        &s,
        "name: orders_to_lake
source_provider:
  data_backend: {type: postgres, datastore_name: src, table: orders}
destination_provider:
  data_backend: {type: delta, datastore_name: lake, table: orders}
column_map:
  - {source: order_id, dest: order_id, roles: [unique_column], data_type: bigint}
  - {source: user_id, dest: user_id, data_type: int}
  - {source: amount, dest: amount, data_type: decimal, precision: 12, scale: 2}
  - {source: discount, dest: discount, data_type: decimal, precision: 12, scale: 2}
  - {source: order_date, dest: order_date, data_type: datetime}
  - {source: updated_at, dest: updated_at, data_type: datetime}
strategies:
  - {name: delta, type: delta, column: updated_at}
  - {name: hash, type: hash}
",
    )?;
    let datastores = format!(
        "{}  lake: {{type: delta, connection: {{uri: lake}}}}\n",
        s.datastores_yaml()
    );
    std::fs::write(ws.dir.path().join("datastores.yaml"), datastores)?;
    let aggregate_yaml = crate::aggregate_sync::pipeline_yaml("postgres", "auto").replacen(
        "    type: postgres\n    datastore_name: src\n",
        "    type: delta\n    datastore_name: lake\n",
        1,
    );
    assert!(aggregate_yaml.contains("type: delta\n    datastore_name: lake"));
    let aggregate = ws.dir.path().join("aggregate.yaml");
    std::fs::write(&aggregate, aggregate_yaml)?;
    let state = ws.dir.path().join("aggregate-state");
    let run_aggregate = |strategy: &str| {
        let r = crate::common::run(&aggregate, strategy, &state);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r
    };
    let expected = format!(
        "(SELECT user_id, CAST(order_date AS DATE) AS date, count(1)::int AS n, sum(amount) AS amount,
                 sum(discount) AS discount, max(updated_at) AS last
          FROM {}.orders GROUP BY 1, 2) AS expected",
        s.src
    );
    let got = format!(
        "(SELECT user_id, date, num_orders, amount, discount, last_updated_at FROM {}.user_daily_orders_aggregate) AS got",
        s.dst
    );
    let load = |strategy: &str| {
        let r = ws.run(strategy);
        assert_eq!(r.code, 0, "{}", r.stderr);
    };

    load("delta");
    let first = run_aggregate("delta");
    assert_eq!(
        crate::common::difference(&client, &expected, &got).await?,
        0,
        "{}",
        first.json
    );
    let groups = crate::common::scalar(
        &client,
        &format!("SELECT count(*) FROM (SELECT DISTINCT user_id, CAST(order_date AS DATE) FROM {}.orders) g", s.src),
    )
    .await?;
    assert_eq!(first.n("groups_recomputed"), groups, "{}", first.json);

    // New amounts for some orders of user 5, and new orders:
    // only their groups are re-computed, each over all its rows.
    client
        .batch_execute(&format!(
            "UPDATE {src}.orders SET amount = amount + 2.5, updated_at = timestamp '2024-06-01'
               WHERE user_id = 5 AND order_id % 2 = 0;
             INSERT INTO {src}.orders VALUES (5001, 7, 12.00, 1, '2024-01-03 10:00', '2024-06-01 01:00'),
               (5002, 36, 3.50, NULL, '2024-02-20 23:00', '2024-06-01 02:00');",
            src = s.src
        ))
        .await?;
    let touched = crate::common::scalar(
        &client,
        &format!("SELECT count(*) FROM (SELECT DISTINCT user_id, CAST(order_date AS DATE) FROM {}.orders WHERE updated_at >= '2024-06-01') g", s.src),
    )
    .await?;
    load("delta");
    let delta = run_aggregate("delta");
    assert_eq!(
        crate::common::difference(&client, &expected, &got).await?,
        0,
        "{}",
        delta.json
    );
    // The window starts at the watermark, whose row is read again.
    assert_eq!(delta.n("groups_recomputed"), touched + 1, "{}", delta.json);

    // Moves and deletes: a delta cannot see the groups rows left; a hash
    // run over the lake finds them.
    client
        .batch_execute(&format!(
            "UPDATE {src}.orders SET user_id = 36, updated_at = timestamp '2024-06-02' WHERE order_id IN (10, 11, 12);
             UPDATE {src}.orders SET order_date = order_date + interval '3 days', updated_at = timestamp '2024-06-02' WHERE order_id IN (20, 21);
             DELETE FROM {src}.orders WHERE user_id = 9;",
            src = s.src
        ))
        .await?;
    load("hash");
    let hash = run_aggregate("hash");
    assert_eq!(
        crate::common::difference(&client, &expected, &got).await?,
        0,
        "{}",
        hash.json
    );
    assert!(hash.n("groups_deleted") > 0, "{}", hash.json);
    Ok(())
}
