//! Crash and tamper: a run is killed at a random point, then the destination
//! or the config is changed behind SyncHub's back (nothing; the table
//! dropped, truncated, or created again with the same definition; the
//! filters or a column's source changed), then the pipeline runs again.
//! Every time the destination must end equal to what the current config
//! selects from the source: a checkpoint or a watermark that no longer
//! describes the destination must never make a run skip rows.
//!
//! 26 rounds on PostgreSQL and 26 on SQLite, each with a random strategy,
//! kill point (an abort before or after a partition's commit, or a real
//! SIGKILL after a random delay) and tamper. The seed is printed;
//! `SYNCHUB_TEST_SEED` replays it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{connect, run, scalar, Lcg, RunResult, Schemas};
use anyhow::{Context, Result};
use rusqlite::Connection;

const ROWS: i64 = 6_000;
const ROUNDS: usize = 26;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    Nothing,
    Drop,
    Truncate,
    Recreate,
    WidenFilters,
    ChangeColumnSource,
}

const TAMPERS: [Tamper; 6] = [
    Tamper::Nothing,
    Tamper::Drop,
    Tamper::Truncate,
    Tamper::Recreate,
    Tamper::WidenFilters,
    Tamper::ChangeColumnSource,
];

/// The pipeline as a round configures it: the base selects `qty <> 3` and
/// takes `title` from `title`; tampering widens the filter (so rows the
/// old config left out must arrive) or takes `title` from `alt_title` (so
/// every row committed before must be rewritten).
#[derive(Debug, Clone, Copy)]
struct Config {
    filtered: bool,
    alt_title: bool,
}

impl Config {
    const BASE: Config = Config {
        filtered: true,
        alt_title: false,
    };

    fn yaml(&self, name: &str, backend: &str) -> String {
        let filters = if self.filtered {
            ", filters: [\"qty <> 3\"]"
        } else {
            ""
        };
        format!(
            "name: {name}
partition_column: id
partition_step: 500
source_provider:
  data_backend: {{type: {backend}, datastore_name: src, table: items{filters}}}
destination_provider:
  data_backend: {{type: {backend}, datastore_name: dst, table: items}}
column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: qty, dest: qty, data_type: int}}
  - {{source: {title}, dest: title, data_type: text}}
  - {{source: version, dest: version, data_type: bigint}}
strategies:
  - {{name: full, type: full, page_size: 200}}
  - {{name: hash, type: hash, page_size: 200}}
  - name: delta
    type: delta
    column: version
    page_size: 200
    primary_partitions:
      - {{column: version, step: 150, data_type: int}}
",
            title = if self.alt_title { "alt_title" } else { "title" },
        )
    }

    /// The rows the config selects, as SQL over the source table `src`.
    fn expected_sql(&self, src: &str) -> String {
        format!(
            "SELECT id, qty, {} AS title, version FROM {src}{}",
            if self.alt_title { "alt_title" } else { "title" },
            if self.filtered { " WHERE qty <> 3" } else { "" }
        )
    }
}

/// What differs between engines: how to reach the tables.
trait Engine {
    fn backend(&self) -> &'static str;
    /// Runs statements on the source database.
    async fn source(&self, sql: &str) -> Result<()>;
    /// Runs statements on the destination database.
    async fn destination(&self, sql: &str) -> Result<()>;
    async fn destination_count(&self, sql: &str) -> Result<i64>;
    /// The source and destination tables, as named on their own connections.
    fn src(&self) -> String;
    fn dst(&self) -> String;
    /// Rows in one of expected-or-destination and not the other, plus
    /// duplicated keys in the destination.
    async fn mismatches(&self, config: Config) -> Result<i64>;
    /// Up to ten rows on each side that the other lacks, for a failure's
    /// message.
    async fn sample_differences(&self, config: Config) -> Result<String>;
    /// Drops the destination table and creates it again as it was.
    async fn recreate(&self) -> Result<()>;
    fn truncate_sql(&self) -> String;
    /// SQL counting destination tables named like the destination (0 or 1).
    fn exists_sql(&self) -> String;
}

struct Postgres {
    client: tokio_postgres::Client,
    schemas: Schemas,
}

impl Engine for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }
    async fn source(&self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql).await?)
    }
    async fn destination(&self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql).await?)
    }
    async fn destination_count(&self, sql: &str) -> Result<i64> {
        scalar(&self.client, sql).await
    }
    fn src(&self) -> String {
        format!("{}.items", self.schemas.src)
    }
    fn dst(&self) -> String {
        format!("{}.items", self.schemas.dst)
    }
    async fn mismatches(&self, config: Config) -> Result<i64> {
        let (expected, dst) = (config.expected_sql(&self.src()), self.dst());
        scalar(
            &self.client,
            &format!(
                "SELECT (SELECT count(*) FROM (({expected}) EXCEPT ALL SELECT id, qty, title, version FROM {dst}) a)
                      + (SELECT count(*) FROM (SELECT id, qty, title, version FROM {dst} EXCEPT ALL ({expected})) b)
                      + (SELECT count(*) - count(DISTINCT id) FROM {dst})"
            ),
        )
        .await
    }
    async fn sample_differences(&self, config: Config) -> Result<String> {
        let (expected, dst) = (config.expected_sql(&self.src()), self.dst());
        let rows = self
            .client
            .query(
                &format!(
                    "(SELECT 'source only', * FROM (({expected}) EXCEPT ALL SELECT id, qty, title, version FROM {dst}) a ORDER BY id LIMIT 10)
                     UNION ALL
                     (SELECT 'destination only', * FROM (SELECT id, qty, title, version FROM {dst} EXCEPT ALL ({expected})) b ORDER BY id LIMIT 10)"
                ),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                format!(
                    "{}: id={} qty={:?} title={:?} version={}",
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, Option<i32>>(2),
                    r.get::<_, Option<String>>(3),
                    r.get::<_, i64>(4)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }
    async fn recreate(&self) -> Result<()> {
        self.destination(&format!(
            "DROP TABLE {dst}; CREATE TABLE {dst} (id bigint NOT NULL, qty integer, title text, version bigint, PRIMARY KEY (id))",
            dst = self.dst()
        ))
        .await
    }
    fn truncate_sql(&self) -> String {
        format!("TRUNCATE {}", self.dst())
    }
    fn exists_sql(&self) -> String {
        format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename = 'items'",
            self.schemas.dst
        )
    }
}

struct Sqlite {
    dir: PathBuf,
}

impl Sqlite {
    fn open(&self, file: &str) -> Result<Connection> {
        let conn = Connection::open(self.dir.join(file))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Ok(conn)
    }
}

impl Sqlite {
    /// The destination with the source attached as `src`, and the SQL of
    /// the rows `config` selects from it.
    fn destination_with_source(&self, config: Config) -> Result<(Connection, String)> {
        let conn = self.open("warehouse.db")?;
        conn.execute(
            "ATTACH DATABASE ?1 AS src",
            [self.dir.join("source.db").to_str().unwrap()],
        )?;
        Ok((conn, config.expected_sql("src.items")))
    }
}

impl Engine for Sqlite {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    async fn source(&self, sql: &str) -> Result<()> {
        Ok(self.open("source.db")?.execute_batch(sql)?)
    }
    async fn destination(&self, sql: &str) -> Result<()> {
        Ok(self.open("warehouse.db")?.execute_batch(sql)?)
    }
    async fn destination_count(&self, sql: &str) -> Result<i64> {
        Ok(self
            .open("warehouse.db")?
            .query_row(sql, [], |r| r.get(0))?)
    }
    fn src(&self) -> String {
        "items".to_string()
    }
    fn dst(&self) -> String {
        "items".to_string()
    }
    async fn mismatches(&self, config: Config) -> Result<i64> {
        let (conn, expected) = self.destination_with_source(config)?;
        Ok(conn.query_row(
            &format!(
                "SELECT (SELECT count(*) FROM ({expected} EXCEPT SELECT id, qty, title, version FROM main.items))
                      + (SELECT count(*) FROM (SELECT id, qty, title, version FROM main.items EXCEPT {expected}))
                      + (SELECT count(*) - count(DISTINCT id) FROM main.items)"
            ),
            [],
            |r| r.get(0),
        )?)
    }
    async fn sample_differences(&self, config: Config) -> Result<String> {
        let (conn, expected) = self.destination_with_source(config)?;
        let mut stmt = conn.prepare(&format!(
            "SELECT * FROM (SELECT 'source only', * FROM ({expected} EXCEPT SELECT id, qty, title, version FROM main.items) LIMIT 10)
             UNION ALL
             SELECT * FROM (SELECT 'destination only', * FROM (SELECT id, qty, title, version FROM main.items EXCEPT {expected}) LIMIT 10)"
        ))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}: id={} qty={:?} title={:?} version={}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.join("\n"))
    }
    async fn recreate(&self) -> Result<()> {
        let conn = self.open("warehouse.db")?;
        let ddl: String = conn.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'",
            [],
            |r| r.get(0),
        )?;
        conn.execute_batch(&format!("DROP TABLE items; {ddl}"))?;
        Ok(())
    }
    fn truncate_sql(&self) -> String {
        "DELETE FROM items".to_string()
    }
    fn exists_sql(&self) -> String {
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'items'".to_string()
    }
}

/// A run killed on purpose: an abort at a partition's commit, or a real
/// SIGKILL after `delay_ms` (the run may finish first: then `true`).
fn killed_run(pipeline: &Path, strategy: &str, state: &Path, kill: &Kill) -> Result<bool> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synchub"));
    cmd.arg("run")
        .arg(pipeline)
        .args(["--strategy", strategy, "--state-dir"])
        .arg(state)
        .env("SYNCHUB_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match kill {
        Kill::Abort(point) => {
            let status = cmd.env("SYNCHUB_TEST_CRASH", point).status()?;
            // Every killed run has more partitions than the kill point.
            anyhow::ensure!(!status.success(), "the run ended before {point}");
            Ok(false)
        }
        Kill::Sigkill(delay_ms) => {
            let mut child = cmd.spawn()?;
            std::thread::sleep(Duration::from_millis(*delay_ms));
            let _ = child.kill();
            Ok(child.wait()?.success())
        }
    }
}

/// Whether the latest run in `state` completed: a run killed while it
/// exits has finished its work.
fn last_run_completed(pipeline: &str, state: &Path) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args([
            "history",
            pipeline,
            "--limit",
            "1",
            "--output",
            "json",
            "--state-dir",
        ])
        .arg(state)
        .output()
        .expect("run synchub history");
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    history["runs"][0]["status"] == "completed"
}

#[derive(Debug)]
enum Kill {
    Abort(String),
    Sigkill(u64),
}

async fn checkpoint_rows<E: Engine>(engine: &E, checkpoints: &str) -> i64 {
    engine
        .destination_count(&format!("SELECT count(*) FROM {checkpoints}"))
        .await
        .unwrap_or(0)
}

/// Plays `ROUNDS` rounds on `engine`, with the pipeline and `datastores`
/// written in `dir`. `checkpoints` is the destination's checkpoint table,
/// qualified.
async fn rounds<E: Engine>(
    engine: &E,
    name: &str,
    checkpoints: &str,
    dir: &Path,
    datastores: &str,
) -> Result<()> {
    let mut rng = Lcg::seeded("tamper test");
    std::fs::write(dir.join("datastores.yaml"), datastores)?;
    let pipeline = dir.join("items.yaml");
    let mut next_version = ROWS + 1;
    for round in 0..ROUNDS {
        let strategy = ["full", "delta", "hash"][rng.below(3) as usize];
        let tamper = TAMPERS[rng.below(TAMPERS.len() as u64) as usize];
        let state = dir.join(format!("state-{round}"));
        let mut config = Config::BASE;
        std::fs::write(&pipeline, config.yaml(name, engine.backend()))?;
        engine
            .destination(&format!(
                "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {checkpoints}",
                engine.dst()
            ))
            .await?;
        // A delta resumes from a watermark: one is always set first. The
        // others start from an empty or a filled destination.
        if strategy == "delta" || rng.below(2) == 0 {
            let prior = run(&pipeline, strategy, &state);
            assert_eq!(prior.code, 0, "round {round}: first run: {}", prior.stderr);
        }
        // Changes for the killed run: updates move the cursor forward
        // (spread over many delta windows), new rows arrive, and before a
        // hash run some rows go. No row leaves the filter: only hash can
        // remove a row from the destination.
        let first = 1 + rng.below(ROWS as u64) as i64;
        let src = engine.src();
        engine
            .source(&format!(
                "UPDATE {src} SET qty = qty + 7, title = title || '+', version = {next_version} + id % 900
                   WHERE id BETWEEN {first} AND {first} + 700;
                 INSERT INTO {src} (id, qty, title, alt_title, version)
                   SELECT max(id) + 1, {round} % 7, 'new {round}', 'alt new {round}', {next_version} + 950 FROM {src};"
            ))
            .await?;
        next_version += 1_000;
        if strategy == "hash" {
            let gone = 1 + rng.below(ROWS as u64) as i64;
            engine
                .source(&format!(
                    "DELETE FROM {src} WHERE id BETWEEN {gone} AND {gone} + 40"
                ))
                .await?;
        }
        let kill = if rng.below(4) == 0 {
            Kill::Sigkill(rng.below(700))
        } else {
            let point = ["before_commit", "after_commit"][rng.below(2) as usize];
            Kill::Abort(format!("{point}:{}", 1 + rng.below(3)))
        };
        let before = checkpoint_rows(engine, checkpoints).await;
        let finished =
            killed_run(&pipeline, strategy, &state, &kill)? || last_run_completed(name, &state);
        let left = checkpoint_rows(engine, checkpoints).await - before;

        // A run killed early may not have created the table: there is
        // nothing to truncate or create again then.
        let exists = engine.destination_count(&engine.exists_sql()).await? == 1;
        match tamper {
            Tamper::Nothing => {}
            Tamper::Truncate | Tamper::Recreate if !exists => {}
            Tamper::Drop => {
                engine
                    .destination(&format!("DROP TABLE IF EXISTS {}", engine.dst()))
                    .await?
            }
            Tamper::Truncate => engine.destination(&engine.truncate_sql()).await?,
            Tamper::Recreate => engine.recreate().await?,
            Tamper::WidenFilters => config.filtered = false,
            Tamper::ChangeColumnSource => config.alt_title = true,
        }
        std::fs::write(&pipeline, config.yaml(name, engine.backend()))?;
        let context = format!(
            "{} round {round}: {strategy}, killed by {kill:?} ({}) leaving {left} new checkpoints, then {tamper:?}",
            engine.backend(),
            if finished { "finished first" } else { "killed" }
        );

        let again = run(&pipeline, strategy, &state);
        if strategy == "delta" && tamper != Tamper::Nothing {
            expect_refused_delta(&again, engine.backend(), tamper, &context);
            // The way out the message gives: a full run, then the delta.
            let full = run(&pipeline, "full", &state);
            assert_eq!(full.code, 0, "{context}: full: {}", full.stderr);
            let delta = run(&pipeline, "delta", &state);
            assert_eq!(
                delta.code, 0,
                "{context}: delta after full: {}",
                delta.stderr
            );
        } else {
            assert_eq!(again.code, 0, "{context}: rerun: {}", again.stderr);
            if tamper != Tamper::Nothing && left > 0 && !finished {
                assert!(
                    again.stderr.contains("; starting over"),
                    "{context}: the run should say why it starts over: {}",
                    again.stderr
                );
                assert_eq!(again.n("partitions_skipped"), 0, "{context}");
            }
        }
        let mismatches = engine.mismatches(config).await?;
        if mismatches != 0 {
            let sample = engine.sample_differences(config).await?;
            let history = Command::new(env!("CARGO_BIN_EXE_synchub"))
                .args(["history", name, "--state-dir"])
                .arg(&state)
                .output()?;
            panic!(
                "{context}: destination differs from what the config selects ({mismatches}):\n{sample}\nhistory:\n{}\nlast run: {}",
                String::from_utf8_lossy(&history.stdout),
                again.stderr
            );
        }
    }
    Ok(())
}

/// A delta whose watermark no longer describes the destination exits 2
/// with the reason and the way out.
fn expect_refused_delta(r: &RunResult, backend: &str, tamper: Tamper, context: &str) {
    assert_eq!(r.code, 2, "{context}: {}", r.stderr);
    let reasons: &[&str] = match (tamper, backend) {
        (Tamper::WidenFilters | Tamper::ChangeColumnSource, _) => {
            &["the pipeline's config (columns, types, filters or joins) changed since the watermark of strategy delta was set by run "]
        }
        (_, "postgres") => &["was dropped and created again, truncated or rewritten since the watermark of strategy delta was set by run "],
        // SQLite may give a table created again its old root page; it is
        // then caught empty.
        _ => &[
            "was dropped and created again, truncated or rewritten since the watermark of strategy delta was set by run ",
            "is empty, but it held rows when the watermark of strategy delta was set by run ",
        ],
    };
    assert!(
        reasons.iter().any(|reason| r.stderr.contains(reason)),
        "{context}: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("; a delta run would never read the rows below the watermark. Run a full sync once (synchub run ")
            && r.stderr.contains(" --strategy full) or forget the watermark (synchub state reset "),
        "{context}: {}",
        r.stderr
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn postgres_crash_and_tamper_never_skips_rows() -> Result<()> {
    let client = connect().await?;
    let schemas = Schemas::create(&client, "tamper").await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {src}.items (id bigint PRIMARY KEY, qty int, title text, alt_title text, version bigint NOT NULL);
             INSERT INTO {src}.items SELECT g, g % 7, 'item ' || g, 'alt ' || g, g FROM generate_series(1, {ROWS}) g;
             CREATE SCHEMA {dst};",
            src = schemas.src,
            dst = schemas.dst,
        ))
        .await?;
    let datastores = schemas.datastores_yaml();
    let checkpoints = format!("{}._synchub_checkpoints", schemas.dst);
    let engine = Postgres { client, schemas };
    let dir = tempfile::tempdir()?;
    rounds(&engine, "tamper_pg", &checkpoints, dir.path(), &datastores)
        .await
        .context("PostgreSQL rounds")
}

#[tokio::test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: scripts/test.sh"
)]
async fn sqlite_crash_and_tamper_never_skips_rows() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let src = Connection::open(dir.path().join("source.db"))?;
    src.execute_batch(&format!(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, title TEXT, alt_title TEXT, version INTEGER NOT NULL);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ROWS})
         INSERT INTO items SELECT i, i % 7, 'item ' || i, 'alt ' || i, i FROM g;"
    ))?;
    drop(src);
    let engine = Sqlite {
        dir: dir.path().to_path_buf(),
    };
    let datastores = "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n";
    rounds(
        &engine,
        "tamper_sqlite",
        "_synchub_checkpoints",
        dir.path(),
        datastores,
    )
    .await
    .context("SQLite rounds")
}
