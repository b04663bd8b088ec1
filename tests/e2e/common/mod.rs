//! Shared by the end-to-end tests: a PostgreSQL schema per test, running
//! the real binary, reading its JSON summary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result};
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

pub const PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

pub async fn connect() -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(PG, NoTls)
        .await
        .context("local PostgreSQL at 127.0.0.1:5432 (user postgres, db test)")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `<prefix>_<pid>_src` and `_dst` schemas, dropped (from a thread of its
/// own, so it works inside a runtime) when this goes out of scope.
pub struct Schemas {
    pub src: String,
    pub dst: String,
}

impl Schemas {
    pub async fn create(client: &Client, prefix: &str) -> Result<Schemas> {
        let base = format!("{prefix}_{}", std::process::id());
        let s = Schemas {
            src: format!("{base}_src"),
            dst: format!("{base}_dst"),
        };
        client
            .batch_execute(&format!("{}; CREATE SCHEMA {}", s.drop_sql(), s.src))
            .await?;
        Ok(s)
    }

    fn drop_sql(&self) -> String {
        format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
            self.src, self.dst
        )
    }

    /// datastores.yaml text with `src` and `dst` pointing at the two schemas.
    pub fn datastores_yaml(&self) -> String {
        format!(
            "datastores:\n  src: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {}}}}}\n  dst: {{type: postgres, connection: {{host: 127.0.0.1, port: 5432, user: postgres, dbname: test, schema: {}}}}}\n",
            self.src, self.dst
        )
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let sql = self.drop_sql();
        on_a_thread_of_its_own(async move {
            if let Ok(c) = connect().await {
                let _ = c.batch_execute(&sql).await;
            }
        });
    }
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own:
/// a guard's drop may run inside a test's runtime, which must not block.
pub fn on_a_thread_of_its_own(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(work))
    })
    .join();
}

pub async fn scalar(client: &Client, sql: &str) -> Result<i64> {
    let row = client
        .query_one(sql, &[])
        .await
        .with_context(|| sql.to_string())?;
    Ok(row.get::<_, i64>(0))
}

/// Rows of `a` missing from `b` plus rows of `b` missing from `a`.
pub async fn difference(client: &Client, a: &str, b: &str) -> Result<i64> {
    scalar(
        client,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x) \
             + (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) y)"
        ),
    )
    .await
}

/// The binary's outcome: exit code, parsed JSON summary (if any), stderr.
pub struct RunResult {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl RunResult {
    pub fn n(&self, key: &str) -> i64 {
        self.json[key].as_i64().unwrap_or(-1)
    }
}

pub fn synchub(args: &[&str]) -> Output {
    synchub_logging(args, "warn")
}

/// `synchub` with its log filtered by `log` (`SYNCHUB_LOG`).
pub fn synchub_logging(args: &[&str], log: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_LOG", log)
        .output()
        .expect("run synchub")
}

/// A test's folder: `datastores.yaml` for its schemas, its pipeline
/// (`items.yaml`) and its state directory.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub pipeline: PathBuf,
    pub state: PathBuf,
}

impl Workspace {
    pub fn new(schemas: &Schemas, pipeline_yaml: &str) -> Result<Workspace> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("datastores.yaml"),
            schemas.datastores_yaml(),
        )?;
        let pipeline = dir.path().join("items.yaml");
        std::fs::write(&pipeline, pipeline_yaml)?;
        let state = dir.path().join("state");
        Ok(Workspace {
            dir,
            pipeline,
            state,
        })
    }

    /// `run` of its pipeline with `strategy`, on its state directory.
    pub fn run(&self, strategy: &str) -> RunResult {
        run(&self.pipeline, strategy, &self.state)
    }

    /// `run`, its log filtered by `log` (in `RunResult::stderr`).
    pub fn run_logging(&self, strategy: &str, log: &str) -> RunResult {
        run_logging(&self.pipeline, strategy, &self.state, log)
    }
}

/// `synchub run <pipeline> --strategy S --state-dir <dir> --output json`.
pub fn run(pipeline: &Path, strategy: &str, state_dir: &Path) -> RunResult {
    run_logging(pipeline, strategy, state_dir, "warn")
}

/// `run`, its log filtered by `log`.
pub fn run_logging(pipeline: &Path, strategy: &str, state_dir: &Path, log: &str) -> RunResult {
    let out = synchub_logging(
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--strategy",
            strategy,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--output",
            "json",
        ],
        log,
    );
    RunResult {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A pipeline's providers: `items` of datastore `src` into `items` of `dst`,
/// both of type `backend`.
pub fn items_providers(backend: &str) -> String {
    format!(
        "source_provider:
  data_backend: {{type: {backend}, datastore_name: src, table: items}}
destination_provider:
  data_backend: {{type: {backend}, datastore_name: dst, table: items}}
"
    )
}

/// The moved-row scenario, on either engine (`hash_sync.rs`,
/// `sqlite_incremental.rs`): `items` (id, grp, name) of 250,000 rows,
/// partitioned on `grp`, a column rows can change, in one partition.
pub fn moved_rows_pipeline(name: &str, backend: &str) -> String {
    format!(
        "name: {name}
partition_column: grp
partition_step: 300000
{providers}column_map:
  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}
  - {{source: grp, dest: grp, data_type: int}}
  - {{source: name, dest: name, data_type: text}}
strategies:
  - {{name: full, type: full}}
  - {{name: hash, type: hash}}
",
        providers = items_providers(backend)
    )
}

/// A change in every bucket, so the differing rows (all 250,000) are
/// compared in three ranges of `grp` of at most 100,000 rows, low first.
/// Row 240000 moves from the last range to the first: the first range finds
/// it new and writes it, the last finds it gone, and its delete must not
/// take the row the first range just wrote. Row 10 moves the other way:
/// deleted from the first range, written again by the last.
pub fn move_rows_sql(table: &str) -> String {
    format!(
        "UPDATE {table} SET name = name || '!' WHERE id % 50 = 0;
         UPDATE {table} SET grp = 5 WHERE id = 240000;
         UPDATE {table} SET grp = 245000 WHERE id = 10;"
    )
}

/// A tiny deterministic generator, so a failing seed can be replayed.
pub struct Lcg(pub u64);

impl Lcg {
    /// A seeded generator: `SYNCHUB_TEST_SEED` when set, else the clock.
    /// The seed is printed, with how to replay it.
    pub fn seeded(test: &str) -> Lcg {
        let seed = std::env::var("SYNCHUB_TEST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            });
        eprintln!("{test} seed: {seed} (SYNCHUB_TEST_SEED={seed} replays it)");
        Lcg(seed)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// SQLite datastores in `dir`: `src` is `source.db`, `dst` is `warehouse.db`.
pub fn write_sqlite_datastores(dir: &Path) {
    std::fs::write(
        dir.join("datastores.yaml"),
        "datastores:\n  src: {type: sqlite, connection: {path: source.db}}\n  dst: {type: sqlite, connection: {path: warehouse.db}}\n",
    )
    .unwrap();
}

/// Rows of `table` that differ between `source.db` and `warehouse.db` in
/// `dir`, over the given columns.
pub fn sqlite_difference(dir: &Path, table: &str, columns: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.join("source.db")).unwrap();
    c.execute_batch(&format!(
        "ATTACH '{}' AS w",
        dir.join("warehouse.db").display()
    ))
    .unwrap();
    c.query_row(
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT {columns} FROM main.{table} EXCEPT SELECT {columns} FROM w.{table}))
                  + (SELECT count(*) FROM (SELECT {columns} FROM w.{table} EXCEPT SELECT {columns} FROM main.{table}))"
        ),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Count of the checkpoints in `warehouse.db` whose partition id is LIKE
/// `pattern`.
pub fn sqlite_checkpoints_like(dir: &Path, pattern: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.join("warehouse.db")).unwrap();
    c.query_row(
        "SELECT count(*) FROM _synchub_checkpoints WHERE partition_id LIKE ?1",
        [pattern],
        |r| r.get(0),
    )
    .unwrap()
}

/// `synchub plan`'s line counting the partitions of `strategy`.
pub fn plan_line(pipeline: &Path, state: &Path, strategy: &str) -> String {
    let out = synchub(&[
        "plan",
        pipeline.to_str().unwrap(),
        "--strategy",
        strategy,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("partitions: "))
        .unwrap_or_default()
        .to_string()
}
