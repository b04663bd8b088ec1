//! PostgreSQL into ClickHouse and back, through the real binary: a full
//! copy, a delta with inserts and updates, the two tables equal value by
//! value after each (microsecond timestamps, NULL apart from '', decimals
//! to the cent); then ClickHouse as the source of a full copy into
//! PostgreSQL. And a run killed mid-way, or crashed between a partition's
//! rows and its checkpoint, resumed with nothing lost or doubled, even for
//! a reader without FINAL.

use crate::common::{connect, on_a_thread_of_its_own, Schemas};
use anyhow::{Context, Result};
use connectors::clickhouse::Client as ChClient;
use tokio_postgres::Client;

const ROWS: i64 = 5_000;

/// One row as both databases give it: id, name, amount as text, flag,
/// updated_at in microseconds since 1970.
type Row = (i64, Option<String>, Option<String>, Option<bool>, i64);

fn ch_datastore(database: &str) -> planner::Datastore {
    planner::Datastore::new(
        "ch",
        std::sync::Arc::new(connectors::clickhouse::ClickHouseConnection {
            host: "127.0.0.1".into(),
            port: 8123,
            user: "default".into(),
            password: None,
            database: database.into(),
        }),
    )
}

fn clickhouse(database: &str) -> Result<ChClient> {
    ChClient::new(&ch_datastore(database)).context("ClickHouse client")
}

/// A ClickHouse database of its own (`<prefix>_<pid>`), dropped when this
/// goes out of scope.
struct ChDatabase {
    name: String,
}

impl ChDatabase {
    async fn create(prefix: &str) -> Result<ChDatabase> {
        let db = ChDatabase::absent(prefix).await?;
        clickhouse("default")?
            .query(&format!("CREATE DATABASE `{}`", db.name))
            .await?;
        Ok(db)
    }

    /// The name only: the sink creates the database.
    async fn absent(prefix: &str) -> Result<ChDatabase> {
        let name = format!("{prefix}_{}", std::process::id());
        clickhouse("default")?
            .query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .context("local ClickHouse at 127.0.0.1:8123 (user default, no password)")?;
        Ok(ChDatabase { name })
    }
}

impl Drop for ChDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        on_a_thread_of_its_own(async move {
            if let Ok(c) = clickhouse("default") {
                let _ = c.query(&sql).await;
            }
        });
    }
}

async fn pg_rows(client: &Client, table: &str) -> Result<Vec<Row>> {
    let rows = client
        .query(
            &format!(
                "SELECT id, name, amount::text, flag, \
                 (extract(epoch FROM updated_at) * 1000000)::bigint \
                 FROM {table} ORDER BY id"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

/// A TabSeparated field: `\N` is NULL, backslash escapes undone.
fn tsv_field(f: &str) -> Option<String> {
    if f == "\\N" {
        return None;
    }
    let mut out = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The table's rows as a reader sees them (FINAL: one row a key).
async fn ch_rows(ch: &ChClient, table: &str) -> Result<Vec<Row>> {
    let text = ch
        .text(&format!(
            "SELECT id, name, toString(amount), flag, updated_at FROM {table} FINAL ORDER BY id FORMAT TSV"
        ))
        .await?;
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Ok((
                f[0].parse()?,
                tsv_field(f[1]),
                tsv_field(f[2]),
                tsv_field(f[3]).map(|v| v == "1"),
                f[4].parse()?,
            ))
        })
        .collect()
}

async fn ch_count(ch: &ChClient, sql: &str) -> Result<i64> {
    Ok(ch
        .text(&format!("{sql} FORMAT TSV"))
        .await?
        .trim()
        .parse()?)
}

fn pipeline(name: &str, from: (&str, &str), to: (&str, &str)) -> String {
    format!(
        "name: {name}
partition_column: id
partition_step: 1000
source_provider:
  data_backend: {{type: {}, datastore_name: {}, table: items}}
destination_provider:
  data_backend: {{type: {}, datastore_name: {}, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: name, dest: name, data_type: text}}
  - {{source: amount, dest: amount, data_type: decimal, precision: 12, scale: 2}}
  - {{source: flag, dest: flag, data_type: bool}}
  - {{source: updated_at, dest: updated_at, data_type: timestamptz}}
strategies:
  - {{name: full, type: full}}
  - {{name: delta, type: delta, column: updated_at, lookback: 0}}
",
        from.0, from.1, to.0, to.1
    )
}

fn run_ok(dir: &std::path::Path, pipeline: &str, strategy: &str) -> crate::common::RunResult {
    let r = crate::common::run(&dir.join(pipeline), strategy, &dir.join("state"));
    assert_eq!(r.code, 0, "{pipeline} {strategy}: {}", r.stderr);
    r
}

/// Inserted, updated, deleted.
fn writes(r: &crate::common::RunResult) -> (i64, i64, i64) {
    (
        r.n("rows_inserted"),
        r.n("rows_updated"),
        r.n("rows_deleted"),
    )
}

async fn source_table(client: &Client, src: &str, rows: i64) -> Result<()> {
    // NULL and '' names, NULL amounts and flags, distinct microseconds.
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2), \
               flag boolean, updated_at timestamptz NOT NULL);
             INSERT INTO {src} SELECT g,
               CASE WHEN g % 11 = 0 THEN NULL WHEN g % 13 = 0 THEN '' ELSE 'näme ''' || g || E'\\t\\\\' END,
               CASE WHEN g % 7 = 0 THEN NULL ELSE g * 1.25 - 3000 END,
               CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
               timestamptz '2024-03-01 00:00:00+00' + g * interval '1.000007 second'
             FROM generate_series(0, {rows} - 1) g;"
        ))
        .await?;
    Ok(())
}

fn datastores(dir: &std::path::Path, src: &str, ch: &str, back: &str) -> Result<()> {
    std::fs::write(
        dir.join("datastores.yaml"),
        format!(
            "datastores:
  pg: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {src}}}}}
  ch: {{type: clickhouse, connection: {{host: 127.0.0.1, port: 8123, user: default, password: \"${{SYNCHUB_TEST_CH_PASSWORD:-}}\", database: {ch}}}}}
  back: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {back}}}}}
"
        ),
    )?;
    Ok(())
}

#[tokio::test]
async fn postgres_into_clickhouse_and_back_stays_equal_value_by_value() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "ch_sync").await?;
    let db = ChDatabase::create("ch_sync").await?;
    let ch = clickhouse(&db.name)?;
    let src = format!("{}.items", s.src);
    let back = format!("{}.items", s.dst);
    let mid = format!("`{}`.`items`", db.name);
    source_table(&client, &src, ROWS).await?;
    client
        .batch_execute(&format!("CREATE SCHEMA {}", s.dst))
        .await?;
    let dir = tempfile::tempdir()?;
    datastores(dir.path(), &s.src, &db.name, &s.dst)?;
    std::fs::write(
        dir.path().join("into.yaml"),
        pipeline("into_clickhouse", ("postgres", "pg"), ("clickhouse", "ch")),
    )?;
    std::fs::write(
        dir.path().join("back.yaml"),
        pipeline(
            "from_clickhouse",
            ("clickhouse", "ch"),
            ("postgres", "back"),
        ),
    )?;
    let dir = dir.path();

    // A full copy, then a delta with inserts and updates.
    assert_eq!(writes(&run_ok(dir, "into.yaml", "full")), (ROWS, 0, 0));
    assert_eq!(ch_rows(&ch, &mid).await?, pg_rows(&client, &src).await?);
    client
        .batch_execute(&format!(
            "UPDATE {src} SET name = CASE WHEN id % 2 = 0 THEN '' ELSE NULL END, \
               amount = 0.01, flag = NOT flag, \
               updated_at = updated_at + interval '1 day' WHERE id BETWEEN 100 AND 149;
             INSERT INTO {src} VALUES (9001, 'new', 0.01, true, '2030-01-01 00:00:00.000001+00'), \
               (9002, NULL, NULL, NULL, '2030-01-01 00:00:00.000002+00');"
        ))
        .await?;
    assert_eq!(writes(&run_ok(dir, "into.yaml", "delta")), (2, 50, 0));
    assert_eq!(ch_rows(&ch, &mid).await?, pg_rows(&client, &src).await?);
    // A second full run finds every row equal and writes nothing.
    let again = run_ok(dir, "into.yaml", "full");
    assert_eq!(writes(&again), (0, 0, 0));
    assert_eq!(ch_rows(&ch, &mid).await?, pg_rows(&client, &src).await?);

    // And back: ClickHouse the source, PostgreSQL the destination.
    assert_eq!(writes(&run_ok(dir, "back.yaml", "full")), (ROWS + 2, 0, 0));
    assert_eq!(pg_rows(&client, &back).await?, ch_rows(&ch, &mid).await?);
    Ok(())
}

/// A run into ClickHouse killed with SIGKILL once `at_least` partitions are
/// checkpointed there; the partitions checkpointed then.
async fn kill_mid_run(
    dir: &std::path::Path,
    ch: &ChClient,
    checkpoints: &str,
    at_least: i64,
) -> Result<i64> {
    use std::time::{Duration, Instant};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(dir.join("into.yaml"))
        .args(["--strategy", "full", "--state-dir"])
        .arg(dir.join("state"))
        .env("SYNCHUB_LOG", "off")
        .env("SYNCHUB_TEST_SLOW_COMMIT_MS", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let count = format!("SELECT count() FROM {checkpoints} FINAL");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The table appears with the run's first partition.
        let done = ch_count(ch, &count).await.unwrap_or(0);
        if done >= at_least {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never committed {at_least} partitions"
        );
        assert!(
            child.try_wait()?.is_none(),
            "the run ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill()?; // SIGKILL
    assert!(
        !child.wait()?.success(),
        "the child should have been killed"
    );
    ch_count(ch, &count).await
}

#[tokio::test]
async fn a_run_into_clickhouse_killed_mid_run_resumes_without_loss_or_duplicates() -> Result<()> {
    const KILL_ROWS: i64 = 10_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "ch_kill").await?;
    let db = ChDatabase::create("ch_kill").await?;
    let ch = clickhouse(&db.name)?;
    let src = format!("{}.items", s.src);
    let mid = format!("`{}`.`items`", db.name);
    // Ten partitions of exactly 1,000 rows.
    source_table(&client, &src, KILL_ROWS).await?;
    let dir = tempfile::tempdir()?;
    datastores(dir.path(), &s.src, &db.name, &s.dst)?;
    std::fs::write(
        dir.path().join("into.yaml"),
        pipeline(
            "kill_into_clickhouse",
            ("postgres", "pg"),
            ("clickhouse", "ch"),
        ),
    )?;
    let dir = dir.path();
    let checkpoints = format!("`{}`.`_synchub_checkpoints`", db.name);
    let committed = kill_mid_run(dir, &ch, &checkpoints, 3).await?;
    assert!(committed < 10, "killed too late: {committed} committed");
    // Whole partitions only: the checkpointed ones, and at most the one
    // whose rows went in before its checkpoint could.
    let rows = ch_count(&ch, &format!("SELECT count() FROM {mid}")).await?;
    assert_eq!(rows % 1000, 0, "{rows} rows");
    assert!(
        rows == committed * 1000 || rows == (committed + 1) * 1000,
        "{rows} rows for {committed} checkpoints"
    );

    // The rerun writes exactly the rows missing, and the tables match.
    let rerun = run_ok(dir, "into.yaml", "full");
    assert_eq!(writes(&rerun), (KILL_ROWS - rows, 0, 0));
    assert_eq!(ch_rows(&ch, &mid).await?, pg_rows(&client, &src).await?);
    // No row twice, even to a reader without FINAL.
    assert_eq!(
        ch_count(&ch, &format!("SELECT count() FROM {mid}")).await?,
        KILL_ROWS
    );
    // The rerun resumed the killed run: one checkpoint a partition.
    assert_eq!(
        ch_count(&ch, &format!("SELECT count() FROM {checkpoints} FINAL")).await?,
        10
    );
    Ok(())
}

/// A crash after a partition's rows went in and before its checkpoint did:
/// the resumed run finds them, writes them again nowhere, and the table
/// holds each row once.
#[tokio::test]
async fn a_crash_between_rows_and_checkpoint_doubles_nothing() -> Result<()> {
    const CRASH_ROWS: i64 = 5_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "ch_crash").await?;
    // A database that is not there yet: the run creates it.
    let db = ChDatabase::absent("ch_crash").await?;
    let ch = clickhouse(&db.name)?;
    let src = format!("{}.items", s.src);
    let mid = format!("`{}`.`items`", db.name);
    source_table(&client, &src, CRASH_ROWS).await?;
    let dir = tempfile::tempdir()?;
    datastores(dir.path(), &s.src, &db.name, &s.dst)?;
    std::fs::write(
        dir.path().join("into.yaml"),
        pipeline(
            "crash_into_clickhouse",
            ("postgres", "pg"),
            ("clickhouse", "ch"),
        ),
    )?;
    let dir = dir.path();
    let crashed = std::process::Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("run")
        .arg(dir.join("into.yaml"))
        .args(["--strategy", "full", "--state-dir"])
        .arg(dir.join("state"))
        .env("SYNCHUB_LOG", "off")
        .env("SYNCHUB_TEST_CRASH", "before_checkpoint:3")
        .output()?;
    assert!(!crashed.status.success(), "the run should have crashed");
    let checkpoints = format!("`{}`.`_synchub_checkpoints`", db.name);
    assert_eq!(
        ch_count(&ch, &format!("SELECT count() FROM {checkpoints} FINAL")).await?,
        2
    );
    // The third partition's rows are in, its checkpoint is not.
    assert_eq!(
        ch_count(&ch, &format!("SELECT count() FROM {mid}")).await?,
        3000
    );
    let rerun = run_ok(dir, "into.yaml", "full");
    // The third partition is found equal, not written again.
    assert_eq!(writes(&rerun), (CRASH_ROWS - 3000, 0, 0));
    assert_eq!(rerun.n("rows_unchanged"), 1000);
    assert_eq!(
        ch_count(&ch, &format!("SELECT count() FROM {mid}")).await?,
        CRASH_ROWS
    );
    assert_eq!(ch_rows(&ch, &mid).await?, pg_rows(&client, &src).await?);
    Ok(())
}
