//! PostgreSQL into MariaDB and back, through the real binary: full, delta
//! and hash runs with inserts, updates and deletes between them, and the
//! two tables equal value by value after each (microsecond timestamps,
//! NULL apart from '', decimals to the cent).

use crate::common::{connect, on_a_thread_of_its_own, Schemas};
use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use tokio_postgres::Client;

const ROWS: i64 = 5_000;

/// One row as both databases print it.
type Row = (
    i64,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<String>,
);

/// A row as MariaDB gives it: the flag a tinyint.
type MariaDbRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<i8>,
    Option<String>,
);

/// A MariaDB database of its own (`<prefix>_<pid>`), dropped when this goes
/// out of scope.
pub(crate) struct MariaDb {
    pub(crate) name: String,
}

pub(crate) async fn mariadb() -> Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .db_name(Some("test"))
        .setup(vec![
            "SET SESSION time_zone = '+00:00'",
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES'",
        ]);
    mysql_async::Conn::new(opts)
        .await
        .context("local MariaDB at 127.0.0.1:3306 (root, no password)")
}

impl MariaDb {
    pub(crate) async fn create(prefix: &str) -> Result<MariaDb> {
        let name = format!("{prefix}_{}", std::process::id());
        let mut conn = mariadb().await?;
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .await?;
        conn.query_drop(format!("CREATE DATABASE `{name}`")).await?;
        Ok(MariaDb { name })
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        on_a_thread_of_its_own(async move {
            if let Ok(mut c) = mariadb().await {
                let _ = c.query_drop(sql).await;
            }
        });
    }
}

async fn pg_rows(client: &Client, table: &str) -> Result<Vec<Row>> {
    let rows = client
        .query(
            &format!(
                "SELECT id, name, amount::text, flag, \
                 to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') \
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

async fn mariadb_rows(conn: &mut mysql_async::Conn, table: &str) -> Result<Vec<Row>> {
    let rows: Vec<MariaDbRow> = conn
        .query(format!(
            "SELECT id, name, CAST(amount AS CHAR), flag, \
             DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM {table} ORDER BY id"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, amount, flag, at)| (id, name, amount, flag.map(|f| f != 0), at))
        .collect())
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
  - {{name: hash, type: hash}}
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

#[tokio::test]
async fn postgres_into_mariadb_and_back_stays_equal_value_by_value() -> Result<()> {
    let client = connect().await?;
    let s = Schemas::create(&client, "mysql_sync").await?;
    let db = MariaDb::create("mysql_sync").await?;
    let mut my = mariadb().await?;
    let src = format!("{}.items", s.src);
    let back = format!("{}.items", s.dst);
    let mid = format!("`{}`.`items`", db.name);
    // NULL and '' names, NULL amounts and flags, distinct microseconds.
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2), \
               flag boolean, updated_at timestamptz NOT NULL);
             INSERT INTO {src} SELECT g,
               CASE WHEN g % 11 = 0 THEN NULL WHEN g % 13 = 0 THEN '' ELSE 'näme ' || g END,
               CASE WHEN g % 7 = 0 THEN NULL ELSE g * 1.25 - 3000 END,
               CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
               timestamptz '2024-03-01 00:00:00+00' + g * interval '1.000007 second'
             FROM generate_series(1, {ROWS}) g;
             CREATE SCHEMA {};",
            s.dst
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("datastores.yaml"),
        format!(
            "datastores:
  pg: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {}}}}}
  my: {{type: mariadb, connection: {{host: 127.0.0.1, port: 3306, user: root, dbname: {}}}}}
  back: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {}}}}}
",
            s.src, db.name, s.dst
        ),
    )?;
    std::fs::write(
        dir.path().join("into.yaml"),
        pipeline("into_mariadb", ("postgres", "pg"), ("mysql", "my")),
    )?;
    std::fs::write(
        dir.path().join("back.yaml"),
        pipeline("from_mariadb", ("mysql", "my"), ("postgres", "back")),
    )?;
    let dir = dir.path();

    // Into MariaDB: a full copy, then a delta, then a hash run.
    assert_eq!(writes(&run_ok(dir, "into.yaml", "full")), (ROWS, 0, 0));
    assert_eq!(
        mariadb_rows(&mut my, &mid).await?,
        pg_rows(&client, &src).await?
    );
    client
        .batch_execute(&format!(
            "UPDATE {src} SET name = CASE WHEN id % 2 = 0 THEN '' ELSE NULL END, \
               updated_at = updated_at + interval '1 day' WHERE id BETWEEN 100 AND 149;
             INSERT INTO {src} VALUES (9001, 'new', 0.01, true, '2030-01-01 00:00:00.000001+00'), \
               (9002, NULL, NULL, NULL, '2030-01-01 00:00:00.000002+00');"
        ))
        .await?;
    assert_eq!(writes(&run_ok(dir, "into.yaml", "delta")), (2, 50, 0));
    assert_eq!(
        mariadb_rows(&mut my, &mid).await?,
        pg_rows(&client, &src).await?
    );
    client
        .batch_execute(&format!(
            "DELETE FROM {src} WHERE id % 500 = 0;
             UPDATE {src} SET amount = amount + 0.01, flag = NOT flag WHERE id = 1234;
             INSERT INTO {src} VALUES (9003, 'three', -1.50, false, '1999-12-31 23:59:59.999999+00');"
        ))
        .await?;
    assert_eq!(
        writes(&run_ok(dir, "into.yaml", "hash")),
        (1, 1, ROWS / 500)
    );
    assert_eq!(
        mariadb_rows(&mut my, &mid).await?,
        pg_rows(&client, &src).await?
    );

    // And back: MariaDB the source, PostgreSQL the destination.
    let count = ROWS - ROWS / 500 + 3;
    assert_eq!(writes(&run_ok(dir, "back.yaml", "full")), (count, 0, 0));
    assert_eq!(
        pg_rows(&client, &back).await?,
        mariadb_rows(&mut my, &mid).await?
    );
    my.query_drop(format!(
        "UPDATE {mid} SET name = 'changed in MariaDB', \
           updated_at = updated_at + INTERVAL 2 DAY WHERE id BETWEEN 2000 AND 2009;
         INSERT INTO {mid} VALUES (9100, '', 12.34, TRUE, '2031-06-01 12:00:00.654321');"
    ))
    .await?;
    // Row 2000 went with the multiples of 500.
    assert_eq!(writes(&run_ok(dir, "back.yaml", "delta")), (1, 9, 0));
    assert_eq!(
        pg_rows(&client, &back).await?,
        mariadb_rows(&mut my, &mid).await?
    );
    my.query_drop(format!(
        "DELETE FROM {mid} WHERE id IN (1, 2, 3, 9100); \
         UPDATE {mid} SET name = NULL WHERE id = 4;"
    ))
    .await?;
    assert_eq!(writes(&run_ok(dir, "back.yaml", "hash")), (0, 1, 4));
    assert_eq!(
        pg_rows(&client, &back).await?,
        mariadb_rows(&mut my, &mid).await?
    );
    let rows = pg_rows(&client, &back).await?;
    assert_eq!(rows.len() as i64, count + 1 - 4);
    Ok(())
}

/// A run into MariaDB killed with SIGKILL once `at_least` partitions are
/// committed there; the partitions committed then.
async fn kill_mid_run(
    dir: &std::path::Path,
    my: &mut mysql_async::Conn,
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
    let count = format!("SELECT COUNT(*) FROM {checkpoints}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The table appears with the run's first partition.
        let done: i64 = my.query_first(&count).await.ok().flatten().unwrap_or(0);
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
    Ok(my.query_first(&count).await?.unwrap_or(0))
}

#[tokio::test]
async fn a_run_into_mariadb_killed_mid_run_resumes_without_loss_or_duplicates() -> Result<()> {
    const KILL_ROWS: i64 = 10_000;
    let client = connect().await?;
    let s = Schemas::create(&client, "mysql_kill").await?;
    let db = MariaDb::create("mysql_kill").await?;
    let mut my = mariadb().await?;
    let src = format!("{}.items", s.src);
    let mid = format!("`{}`.`items`", db.name);
    // Ten partitions of exactly 1,000 rows.
    client
        .batch_execute(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2), \
               flag boolean, updated_at timestamptz NOT NULL);
             INSERT INTO {src} SELECT g, 'n' || g, g * 0.5, g % 2 = 0,
               timestamptz '2024-03-01 00:00:00+00' + g * interval '1.000003 second'
             FROM generate_series(0, {} - 1) g;",
            KILL_ROWS
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("datastores.yaml"),
        format!(
            "datastores:
  pg: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {}}}}}
  my: {{type: mysql, connection: {{host: 127.0.0.1, port: 3306, user: root, dbname: {}}}}}
",
            s.src, db.name
        ),
    )?;
    std::fs::write(
        dir.path().join("into.yaml"),
        pipeline("kill_into_mariadb", ("postgres", "pg"), ("mysql", "my")),
    )?;
    let dir = dir.path();
    let checkpoints = format!("`{}`.`_synchub_checkpoints`", db.name);
    let committed = kill_mid_run(dir, &mut my, &checkpoints, 3).await?;
    assert!(committed < 10, "killed too late: {committed} committed");
    // What the killed run committed is there, whole; nothing else.
    let rows: Option<i64> = my
        .query_first(format!("SELECT COUNT(*) FROM {mid}"))
        .await?;
    assert_eq!(rows, Some(committed * 1000));

    // The rerun writes exactly the partitions left, and the tables match.
    let rerun = run_ok(dir, "into.yaml", "full");
    assert_eq!(writes(&rerun), (KILL_ROWS - committed * 1000, 0, 0));
    assert_eq!(
        mariadb_rows(&mut my, &mid).await?,
        pg_rows(&client, &src).await?
    );
    let after: Option<i64> = my
        .query_first(format!("SELECT COUNT(*) FROM {checkpoints}"))
        .await?;
    // The rerun resumed the killed run: one checkpoint a partition.
    assert_eq!(after, Some(10));
    Ok(())
}
