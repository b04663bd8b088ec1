//! The state store: runs, their committed partitions and the delta
//! watermarks, in a SQLite file under the state directory.
//!
//! For transactional destinations the authoritative checkpoint is the row the
//! sink writes in the same transaction as the data; this store mirrors it for
//! history and status only. A resumed run skips what the destination itself
//! records (see `crate::resume`), never what this file alone says.
//!
//! Besides what a run needs, this module answers `synchub state show`,
//! `state reset`, `state cleanup` and `history`.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::error::EngineError;

/// Bumped when the layout changes; a newer file is refused, not rewritten.
pub const STATE_VERSION: i64 = 3;

/// `MIGRATIONS[v]` takes a store from version `v` to `v + 1`; they run in one
/// transaction, so a store is always at exactly one version.
const MIGRATIONS: [&str; STATE_VERSION as usize] = [
    // 0 → 1: runs and their committed partitions.
    "CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        strategy TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        error TEXT,
        summary TEXT
     );
     CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, strategy, started_at);
     CREATE TABLE IF NOT EXISTS partitions (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        partition_id TEXT NOT NULL,
        committed_at TEXT NOT NULL,
        rows_inserted INTEGER NOT NULL,
        rows_updated INTEGER NOT NULL,
        rows_unchanged INTEGER NOT NULL,
        PRIMARY KEY (run_id, partition_id)
     );",
    // 1 → 2: delta watermarks, a run's partition count known before it ends,
    // and rows deleted per partition (hash strategy).
    "CREATE TABLE IF NOT EXISTS watermarks (
        pipeline TEXT NOT NULL,
        strategy TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('int', 'micros')),
        value INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (pipeline, strategy)
     );
     ALTER TABLE runs ADD COLUMN partitions_total INTEGER;
     ALTER TABLE partitions ADD COLUMN rows_deleted INTEGER NOT NULL DEFAULT 0;",
    // 2 → 3: what a watermark was set against (see `WatermarkBinding`).
    "ALTER TABLE watermarks ADD COLUMN rows_fingerprint TEXT;
     ALTER TABLE watermarks ADD COLUMN dest_identity TEXT;
     ALTER TABLE watermarks ADD COLUMN dest_nonempty INTEGER;
     ALTER TABLE watermarks ADD COLUMN run_id TEXT;",
];

/// What a delta watermark was set against. Rows at or below it are in the
/// destination only while the destination is that same table, not emptied
/// since, and filled under the same config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkBinding {
    /// `SyncFingerprint::rows` of the run that set it.
    pub rows_fingerprint: String,
    /// `Sink::table_identity` then.
    pub dest_identity: String,
    /// Whether the destination held rows then.
    pub dest_nonempty: bool,
    /// The run that set it (or last confirmed it).
    pub run_id: String,
}

/// Tables a store of any version may hold; a version-0 file with any other
/// table is somebody else's database.
const OWN_TABLES: [&str; 3] = ["runs", "partitions", "watermarks"];

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub pipeline: String,
    pub strategy: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// One run with what it committed: a line of `synchub history`, the last run
/// in `synchub state show`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunInfo {
    /// Its status is `running`, `completed`, `failed`, `cancelled` (SIGINT or
    /// SIGTERM) or `abandoned` (its checkpoints no longer described the
    /// destination, and a new run started over); a run whose process died
    /// stays `running` until the next run of its strategy resumes it.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Rows in the committed partitions (every attempt of a resumed run):
    /// inserted + updated + unchanged.
    pub rows: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_unchanged: u64,
    /// Destination rows deleted because the source no longer has them.
    pub rows_deleted: u64,
    /// Partitions committed so far.
    pub partitions_done: u64,
    /// Partitions the run covers; unknown until the run has planned them.
    pub partitions_total: Option<u64>,
    /// Wall time of the last attempt, once it ended.
    pub duration_seconds: Option<f64>,
}

/// A stored delta watermark.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WatermarkInfo {
    /// `int` or `micros` (microseconds since the Unix epoch, UTC).
    pub kind: String,
    pub value: i64,
    /// The value as people read it: the integer, or the timestamp.
    pub display: String,
    pub updated_at: String,
}

/// What `synchub state show` prints for one strategy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StrategyState {
    pub strategy: String,
    pub last_run: Option<RunInfo>,
    /// Runs recorded for the strategy.
    pub runs: u64,
    pub watermark: Option<WatermarkInfo>,
}

/// What `synchub state reset` removed.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ResetReport {
    pub pipeline: String,
    pub strategy: Option<String>,
    pub runs: Vec<RunRecord>,
    pub partitions: u64,
    /// Strategies whose watermark was removed.
    pub watermarks: Vec<String>,
}

impl ResetReport {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.partitions == 0 && self.watermarks.is_empty()
    }
}

/// What `synchub state cleanup` removed.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CleanupReport {
    pub days: u32,
    /// Runs that finished before this are removed.
    pub cutoff: String,
    pub runs: Vec<RunRecord>,
    pub partitions: u64,
    /// Metrics and log files removed: those of the removed runs, and those
    /// left by runs no longer in the store (after a reset) that started
    /// before the cutoff.
    pub files: Vec<PathBuf>,
    /// Files that could not be removed.
    pub warnings: Vec<String>,
}

impl StateStore {
    /// Opens (creating when missing) `<dir>/state.db`.
    pub fn open(dir: &Path) -> Result<StateStore, EngineError> {
        let path = dir.join("state.db");
        let io_err = |e: std::io::Error| EngineError::State {
            path: path.display().to_string(),
            message: format!("cannot create: {e}"),
        };
        crate::files::create_private_dir(dir).map_err(io_err)?;
        // Created here as 0600 so SQLite's journal and WAL files, which
        // take the database file's mode, are private too.
        crate::files::private_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        crate::files::make_private(&path).map_err(io_err)?;
        Self::open_file(path, OpenFlags::SQLITE_OPEN_CREATE)
    }

    /// Opens `<dir>/state.db` when it exists; creates nothing otherwise.
    pub fn open_existing(dir: &Path) -> Result<Option<StateStore>, EngineError> {
        let path = dir.join("state.db");
        match std::fs::metadata(&path) {
            Ok(_) => Self::open_file(path, OpenFlags::empty()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::State {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    fn open_file(path: PathBuf, extra: OpenFlags) -> Result<StateStore, EngineError> {
        let err = |message: String| EngineError::State {
            path: path.display().to_string(),
            message,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | extra;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| err(e.to_string()))?;
        let store = StateStore { conn, path };
        // Runs of several pipelines share a state directory and may open a
        // new store at the same moment. SQLite answers some of what they
        // race on (switching the journal to WAL, a read turned write) with
        // "database is locked" at once instead of waiting out the busy
        // timeout: try again until the same deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match store.migrate().and_then(|()| store.write_ahead()) {
                Ok(()) => return Ok(store),
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Write-ahead log with `synchronous = NORMAL`: a commit appends to the
    /// log without waiting for the disk, where the default rollback journal
    /// waited four times (10-15 ms of a 40 ms empty delta run). A power cut
    /// can then lose the last commits, never corrupt the file: a lost
    /// watermark re-reads rows the destination already holds, and partition
    /// checkpoints live in the destination's own transactions. A file
    /// system without the shared memory WAL needs keeps the rollback journal.
    fn write_ahead(&self) -> Result<(), EngineError> {
        // The mode is kept in the file: only the first opener switches it,
        // which takes a lock the others' reads would contend for.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            let _mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(|e| self.err(e))
    }

    /// The store's file, `<state-dir>/state.db`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::State {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn not_a_store(&self, why: impl std::fmt::Display) -> EngineError {
        self.err(format!(
            "not a SyncHub state store ({why}); move it away or pass another --state-dir"
        ))
    }

    fn version(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    fn migrate(&self) -> Result<(), EngineError> {
        // Reading the header is the first thing that touches the file: a file
        // that is not SQLite fails here, before anything is written.
        let version = self.version().map_err(|e| self.not_a_store(e))?;
        self.check_version(version)?;
        if version == STATE_VERSION {
            return Ok(());
        }
        // Under a write lock, and re-read: two processes opening an old store
        // at once migrate it once. Any failure rolls the whole upgrade back.
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let result = self.upgrade();
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match (result, self.conn.execute_batch(end)) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(self.err(e))
            }
        }
    }

    /// Brings the store to `STATE_VERSION`, inside the caller's transaction.
    fn upgrade(&self) -> Result<(), EngineError> {
        let version = self.version().map_err(|e| self.err(e))?;
        self.check_version(version)?;
        if version == 0 {
            self.check_no_foreign_tables()?;
        }
        for step in &MIGRATIONS[version as usize..] {
            self.conn.execute_batch(step).map_err(|e| self.err(e))?;
        }
        self.conn
            .execute_batch(&format!("PRAGMA user_version = {STATE_VERSION}"))
            .map_err(|e| self.err(e))
    }

    fn check_version(&self, version: i64) -> Result<(), EngineError> {
        if version > STATE_VERSION {
            return Err(self.err(format!(
                "written by a newer SyncHub (state version {version}, this build reads {STATE_VERSION}); upgrade synchub or use another --state-dir"
            )));
        }
        if version < 0 {
            return Err(self.not_a_store(format!("state version {version}")));
        }
        Ok(())
    }

    fn check_no_foreign_tables(&self) -> Result<(), EngineError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(|e| self.err(e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        match names.iter().find(|n| !OWN_TABLES.contains(&n.as_str())) {
            Some(name) => Err(self.not_a_store(format!(
                "it is an SQLite database with a table \"{name}\" and no SyncHub version"
            ))),
            None => Ok(()),
        }
    }

    /// Runs `f` in a write transaction (taken at once, waiting for other
    /// writers); rolled back when `f` fails.
    fn write<T>(&self, f: impl FnOnce() -> rusqlite::Result<T>) -> Result<T, EngineError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        match f() {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(self.err(e))
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(self.err(e))
            }
        }
    }

    /// The latest run of `pipeline`/`strategy` that did not complete.
    pub fn resumable_run(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<String>, EngineError> {
        self.conn
            .query_row(
                "SELECT run_id, status FROM runs WHERE pipeline = ?1 AND strategy = ?2 \
                 ORDER BY started_at DESC, rowid DESC LIMIT 1",
                params![pipeline, strategy],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
            .map(|r| {
                r.filter(|(_, status)| status != "completed" && status != "abandoned")
                    .map(|(id, _)| id)
            })
    }

    pub fn start_run(
        &self,
        run_id: &str,
        pipeline: &str,
        strategy: &str,
    ) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT INTO runs (run_id, pipeline, strategy, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4) \
                 ON CONFLICT (run_id) DO UPDATE SET status = 'running', finished_at = NULL, error = NULL",
                params![run_id, pipeline, strategy, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records how many partitions the run covers, once they are planned.
    pub fn set_partitions_total(&self, run_id: &str, total: u64) -> Result<(), EngineError> {
        self.conn
            .execute(
                "UPDATE runs SET partitions_total = ?2 WHERE run_id = ?1",
                params![run_id, total as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn record_partition(
        &self,
        run_id: &str,
        partition_id: &str,
        inserted: u64,
        updated: u64,
        unchanged: u64,
    ) -> Result<(), EngineError> {
        self.record_partition_stats(
            run_id,
            partition_id,
            &connectors::WriteStats {
                inserted,
                updated,
                unchanged,
                ..Default::default()
            },
        )
    }

    /// Records a committed partition with what its write did, deletes
    /// included.
    pub fn record_partition_stats(
        &self,
        run_id: &str,
        partition_id: &str,
        stats: &connectors::WriteStats,
    ) -> Result<(), EngineError> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "INSERT INTO partitions (run_id, partition_id, committed_at, rows_inserted, rows_updated, rows_unchanged, rows_deleted) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, partition_id) DO NOTHING",
                params![
                    run_id,
                    partition_id,
                    now(),
                    n(stats.inserted),
                    n(stats.updated),
                    n(stats.unchanged),
                    n(stats.deleted)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn completed_partitions(&self, run_id: &str) -> Result<HashSet<String>, EngineError> {
        let mut stmt = self
            .conn
            .prepare("SELECT partition_id FROM partitions WHERE run_id = ?1")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map([run_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<HashSet<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Ends an unfinished run that will not be resumed, saying why.
    pub fn abandon_run(&self, run_id: &str, why: &str) -> Result<(), EngineError> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ?2, error = ?3 \
                 WHERE run_id = ?1 AND status <> 'completed'",
                params![run_id, now(), why],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
        summary: &serde_json::Value,
    ) -> Result<(), EngineError> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4, summary = ?5 WHERE run_id = ?1",
                params![run_id, status, now(), error, summary.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The delta watermark of `pipeline`/`strategy`: its kind (`int` or
    /// `micros`) and value.
    pub fn watermark(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<(String, i64)>, EngineError> {
        self.conn
            .query_row(
                "SELECT kind, value FROM watermarks WHERE pipeline = ?1 AND strategy = ?2",
                params![pipeline, strategy],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores (replacing) the delta watermark of `pipeline`/`strategy`;
    /// `kind` is `int` or `micros`.
    pub fn set_watermark(
        &self,
        pipeline: &str,
        strategy: &str,
        kind: &str,
        value: i64,
        binding: Option<&WatermarkBinding>,
    ) -> Result<(), EngineError> {
        if kind != "int" && kind != "micros" {
            return Err(self.err(format!("watermark kind \"{kind}\" is not int or micros")));
        }
        self.conn
            .execute(
                "INSERT INTO watermarks (pipeline, strategy, kind, value, updated_at, rows_fingerprint, dest_identity, dest_nonempty, run_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (pipeline, strategy) DO UPDATE SET kind = ?3, value = ?4, updated_at = ?5, \
                 rows_fingerprint = ?6, dest_identity = ?7, dest_nonempty = ?8, run_id = ?9",
                params![
                    pipeline,
                    strategy,
                    kind,
                    value,
                    now(),
                    binding.map(|b| &b.rows_fingerprint),
                    binding.map(|b| &b.dest_identity),
                    binding.map(|b| b.dest_nonempty),
                    binding.map(|b| &b.run_id)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What the watermark of `pipeline`/`strategy` was set against; `None`
    /// when there is no watermark or an older SyncHub set it.
    pub fn watermark_binding(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<WatermarkBinding>, EngineError> {
        self.conn
            .query_row(
                "SELECT rows_fingerprint, dest_identity, dest_nonempty, run_id FROM watermarks \
                 WHERE pipeline = ?1 AND strategy = ?2 AND rows_fingerprint IS NOT NULL",
                params![pipeline, strategy],
                |r| {
                    Ok(WatermarkBinding {
                        rows_fingerprint: r.get(0)?,
                        dest_identity: r.get(1)?,
                        dest_nonempty: r.get(2)?,
                        run_id: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Binds every watermark of `pipeline` to the destination as a complete
    /// full run left it: it then holds every row the config selects, so rows
    /// past each watermark are all a delta needs to read.
    pub fn rebind_watermarks(
        &self,
        pipeline: &str,
        binding: &WatermarkBinding,
    ) -> Result<(), EngineError> {
        self.conn
            .execute(
                "UPDATE watermarks SET rows_fingerprint = ?2, dest_identity = ?3, dest_nonempty = ?4, run_id = ?5 \
                 WHERE pipeline = ?1",
                params![
                    pipeline,
                    binding.rows_fingerprint,
                    binding.dest_identity,
                    binding.dest_nonempty,
                    binding.run_id
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn watermark_info(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<WatermarkInfo>, EngineError> {
        self.conn
            .query_row(
                "SELECT kind, value, updated_at FROM watermarks WHERE pipeline = ?1 AND strategy = ?2",
                params![pipeline, strategy],
                |r| {
                    let kind: String = r.get(0)?;
                    let value: i64 = r.get(1)?;
                    Ok(WatermarkInfo {
                        display: display_watermark(&kind, value),
                        kind,
                        value,
                        updated_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The runs of `pipeline` (of one strategy, or all), newest first, with
    /// what each committed.
    pub fn history(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunInfo>, EngineError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.run_id, r.pipeline, r.strategy, r.status, r.started_at, r.finished_at, r.error, \
                        r.summary, r.partitions_total, COUNT(p.partition_id), \
                        COALESCE(SUM(p.rows_inserted), 0), COALESCE(SUM(p.rows_updated), 0), \
                        COALESCE(SUM(p.rows_unchanged), 0), COALESCE(SUM(p.rows_deleted), 0) \
                 FROM runs r LEFT JOIN partitions p ON p.run_id = r.run_id \
                 WHERE r.pipeline = ?1 AND (?2 IS NULL OR r.strategy = ?2) \
                 GROUP BY r.run_id ORDER BY r.started_at DESC, r.rowid DESC LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![pipeline, strategy, limit.min(i64::MAX as usize) as i64],
                |r| {
                    let summary: Option<String> = r.get(7)?;
                    let summary: serde_json::Value = summary
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default();
                    let count = |k: &str| summary.get(k).and_then(serde_json::Value::as_u64);
                    let committed = r.get::<_, i64>(9)?.max(0) as u64;
                    let inserted = r.get::<_, i64>(10)?.max(0) as u64;
                    let updated = r.get::<_, i64>(11)?.max(0) as u64;
                    let unchanged = r.get::<_, i64>(12)?.max(0) as u64;
                    let deleted = r.get::<_, i64>(13)?.max(0) as u64;
                    // Partitions the sink had checkpointed but this store
                    // missed still count as done once the summary says so.
                    let from_summary = count("partitions_done")
                        .zip(count("partitions_skipped"))
                        .map(|(d, s)| d + s)
                        .unwrap_or(0);
                    let total = r
                        .get::<_, Option<i64>>(8)?
                        .map(|t| t.max(0) as u64)
                        .or_else(|| count("partitions_total"));
                    Ok(RunInfo {
                        run: run_record(r)?,
                        rows: inserted + updated + unchanged,
                        rows_inserted: inserted,
                        rows_updated: updated,
                        rows_unchanged: unchanged,
                        rows_deleted: deleted,
                        partitions_done: committed.max(from_summary),
                        partitions_total: total,
                        duration_seconds: summary
                            .get("duration_seconds")
                            .and_then(serde_json::Value::as_f64),
                    })
                },
            )
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Pipelines with runs or watermarks in this store, sorted.
    pub fn pipelines(&self) -> Result<Vec<String>, EngineError> {
        self.strings(
            "SELECT pipeline FROM runs UNION SELECT pipeline FROM watermarks ORDER BY 1",
            params![],
        )
    }

    /// Strategies of `pipeline` with runs or a watermark, sorted.
    pub fn strategies(&self, pipeline: &str) -> Result<Vec<String>, EngineError> {
        self.strings(
            "SELECT strategy FROM runs WHERE pipeline = ?1 \
             UNION SELECT strategy FROM watermarks WHERE pipeline = ?1 ORDER BY 1",
            params![pipeline],
        )
    }

    fn strings(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<String>, EngineError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The state of each strategy of `pipeline` (or of one): its last run,
    /// how far that got, and the watermark.
    pub fn pipeline_state(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
    ) -> Result<Vec<StrategyState>, EngineError> {
        let mut out = Vec::new();
        for s in self.strategies(pipeline)? {
            if strategy.is_some_and(|want| want != s) {
                continue;
            }
            let runs: i64 = self
                .conn
                .query_row(
                    "SELECT COUNT(*) FROM runs WHERE pipeline = ?1 AND strategy = ?2",
                    params![pipeline, s],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            out.push(StrategyState {
                last_run: self.history(pipeline, Some(&s), 1)?.into_iter().next(),
                runs: runs.max(0) as u64,
                watermark: self.watermark_info(pipeline, &s)?,
                strategy: s,
            });
        }
        Ok(out)
    }

    /// Forgets `pipeline` (or one of its strategies): runs, their committed
    /// partitions and the watermark. The next run starts a new run id, so
    /// the destination's checkpoints (kept per run id) no longer apply and
    /// every partition is synced again.
    pub fn reset(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
    ) -> Result<ResetReport, EngineError> {
        self.write(|| {
            let runs = {
                let mut stmt = self.conn.prepare(
                    "SELECT run_id, pipeline, strategy, status, started_at, finished_at, error FROM runs \
                     WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2) ORDER BY started_at, rowid",
                )?;
                let rows = stmt
                    .query_map(params![pipeline, strategy], run_record)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let watermarks = {
                let mut stmt = self.conn.prepare(
                    "SELECT strategy FROM watermarks WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2) ORDER BY strategy",
                )?;
                let rows = stmt
                    .query_map(params![pipeline, strategy], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let partitions = self.conn.execute(
                "DELETE FROM partitions WHERE run_id IN \
                 (SELECT run_id FROM runs WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2))",
                params![pipeline, strategy],
            )?;
            self.conn.execute(
                "DELETE FROM runs WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2)",
                params![pipeline, strategy],
            )?;
            self.conn.execute(
                "DELETE FROM watermarks WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2)",
                params![pipeline, strategy],
            )?;
            Ok(ResetReport {
                pipeline: pipeline.to_string(),
                strategy: strategy.map(str::to_string),
                runs,
                partitions: partitions as u64,
                watermarks,
            })
        })
    }

    /// Removes completed and failed runs that finished before `cutoff`
    /// (a timestamp as this store writes them), with their partitions. The
    /// latest run of each pipeline and strategy is kept whatever its age
    /// (it is what `state show` reports and what a failed run resumes), and
    /// so is every run still `running`.
    pub fn remove_runs_before(&self, cutoff: &str) -> Result<(Vec<RunRecord>, u64), EngineError> {
        self.write(|| {
            let runs = {
                let mut stmt = self.conn.prepare(
                    "SELECT run_id, pipeline, strategy, status, started_at, finished_at, error FROM runs r \
                     WHERE status IN ('completed', 'failed', 'cancelled', 'abandoned') \
                       AND COALESCE(finished_at, started_at) < ?1 \
                       AND run_id <> (SELECT l.run_id FROM runs l \
                                      WHERE l.pipeline = r.pipeline AND l.strategy = r.strategy \
                                      ORDER BY l.started_at DESC, l.rowid DESC LIMIT 1) \
                     ORDER BY pipeline, strategy, started_at, rowid",
                )?;
                let rows = stmt
                    .query_map([cutoff], run_record)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let mut partitions = 0;
            {
                let mut del_parts = self
                    .conn
                    .prepare("DELETE FROM partitions WHERE run_id = ?1")?;
                let mut del_run = self.conn.prepare("DELETE FROM runs WHERE run_id = ?1")?;
                for r in &runs {
                    partitions += del_parts.execute([&r.run_id])? as u64;
                    del_run.execute([&r.run_id])?;
                }
            }
            Ok((runs, partitions))
        })
    }

    /// Whether the store knows `run_id`.
    pub fn has_run(&self, run_id: &str) -> Result<bool, EngineError> {
        self.conn
            .query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }
}

/// SQLite's "database is locked" or "database is busy", as an error of
/// this store reports it.
fn is_busy(e: &EngineError) -> bool {
    matches!(e, EngineError::State { message, .. }
        if message.contains("database is locked") || message.contains("database is busy"))
}

fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        pipeline: r.get(1)?,
        strategy: r.get(2)?,
        status: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        error: r.get(6)?,
    })
}

/// `synchub state cleanup --days N`: removes completed and failed runs that
/// finished more than `days` days ago (never the latest run of a pipeline and
/// strategy, never a run still going), their partitions, and their metrics
/// and log files; also metrics and logs of runs the store no longer knows
/// (removed by `state reset`) that started before the cutoff. A state
/// directory without a store is left as it is.
pub fn cleanup(state_dir: &Path, days: u32) -> Result<CleanupReport, EngineError> {
    let cutoff_time = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let cutoff = format_time(cutoff_time);
    let mut report = CleanupReport {
        days,
        cutoff: cutoff.clone(),
        ..CleanupReport::default()
    };
    let Some(store) = StateStore::open_existing(state_dir)? else {
        return Ok(report);
    };
    // Held until the end: no run of any pipeline starts while its runs and
    // files are being removed, and none may be running now.
    let _locks = store
        .pipelines()?
        .iter()
        .map(|p| crate::lock::PipelineLock::acquire(state_dir, p, crate::lock::Wait::No))
        .collect::<Result<Vec<_>, _>>()?;
    let (runs, partitions) = store.remove_runs_before(&cutoff)?;
    for r in &runs {
        let removed = crate::records::remove_run_files(state_dir, &r.pipeline, &r.run_id);
        report.files.extend(removed.removed);
        report.warnings.extend(removed.failed);
    }
    report.runs = runs;
    report.partitions = partitions;

    // Records of runs the store has forgotten. A run inserts its row before
    // it creates any file, so a file without a row is never a live run's.
    let mut checked = BTreeSet::new();
    for (pipeline, run_id) in crate::records::recorded_runs(state_dir) {
        if !checked.insert((pipeline.clone(), run_id.clone())) {
            continue;
        }
        let started = chrono::NaiveDateTime::parse_from_str(
            run_id.get(..15).unwrap_or_default(),
            "%Y%m%d_%H%M%S",
        );
        let old = started.is_ok_and(|t| t.and_utc() < cutoff_time);
        if old && !store.has_run(&run_id)? {
            let removed = crate::records::remove_run_files(state_dir, &pipeline, &run_id);
            report.files.extend(removed.removed);
            report.warnings.extend(removed.failed);
        }
    }
    report.files.sort();
    Ok(report)
}

/// A watermark as people read it: an integer as is, microseconds since the
/// epoch as a UTC timestamp.
pub fn display_watermark(kind: &str, value: i64) -> String {
    match kind {
        "micros" => chrono::DateTime::from_timestamp_micros(value)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
            .unwrap_or_else(|| format!("{value} µs")),
        _ => value.to_string(),
    }
}

fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn now() -> String {
    format_time(chrono::Utc::now())
}

/// `20240101_120000_abc123`: sortable by start time, unique by suffix.
pub fn new_run_id() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        &suffix[..6]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_only_unfinished_runs() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.resumable_run("p", "full").unwrap(), None);
        s.start_run("r1", "p", "full").unwrap();
        s.record_partition("r1", "id_0_10", 10, 0, 0).unwrap();
        assert_eq!(s.resumable_run("p", "full").unwrap().as_deref(), Some("r1"));
        assert_eq!(
            s.completed_partitions("r1").unwrap(),
            HashSet::from(["id_0_10".to_string()])
        );
        s.finish_run("r1", "completed", None, &serde_json::json!({}))
            .unwrap();
        assert_eq!(s.resumable_run("p", "full").unwrap(), None);
    }

    /// Runs of different pipelines share a state directory: opening a new
    /// store from many processes at once must work for every one of them.
    #[test]
    fn a_new_store_opened_by_many_at_once_opens_for_all() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
            let openers: Vec<_> = (0..6)
                .map(|_| {
                    let (dir, barrier) = (dir.path().to_path_buf(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        StateStore::open(&dir)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            for opener in openers {
                assert_eq!(opener.join().unwrap(), Ok(()));
            }
        }
    }

    #[test]
    fn refuses_a_newer_state_store() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = StateStore::open(dir.path()).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "state store {}: written by a newer SyncHub (state version 99, this build reads 3); upgrade synchub or use another --state-dir",
                dir.path().join("state.db").display()
            )
        );
    }

    /// The layout version 1 wrote, with one finished run.
    fn version_1_store(dir: &Path) {
        let conn = Connection::open(dir.join("state.db")).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (run_id, pipeline, strategy, status, started_at, finished_at, summary) \
             VALUES ('20240101_120000_aaaaaa', 'p', 'full', 'completed', '2024-01-01T12:00:00.000000Z', \
                     '2024-01-01T12:00:05.000000Z', '{\"partitions_total\": 2, \"partitions_done\": 2, \"partitions_skipped\": 0}');
             INSERT INTO partitions VALUES ('20240101_120000_aaaaaa', 'id_0_10', '2024-01-01T12:00:01.000000Z', 9, 0, 0);
             INSERT INTO partitions VALUES ('20240101_120000_aaaaaa', 'id_10_20', '2024-01-01T12:00:02.000000Z', 10, 0, 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }

    #[test]
    fn migrates_version_1_keeping_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        version_1_store(dir.path());
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.version().unwrap(), STATE_VERSION);
        let runs = s.history("p", None, 10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run.status, "completed");
        assert_eq!(runs[0].rows, 19);
        assert_eq!(runs[0].partitions_done, 2);
        assert_eq!(runs[0].partitions_total, Some(2));
        assert_eq!(s.watermark("p", "full").unwrap(), None);
        s.set_watermark("p", "full", "int", 42, None).unwrap();
        assert_eq!(
            s.watermark("p", "full").unwrap(),
            Some(("int".to_string(), 42))
        );
        s.record_partition_stats(
            "20240101_120000_aaaaaa",
            "id_20_30",
            &connectors::WriteStats {
                deleted: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let runs = s.history("p", None, 10).unwrap();
        assert_eq!((runs[0].rows, runs[0].rows_deleted), (19, 3));
        drop(s);
        // Opening again finds version 2 and changes nothing.
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            s.watermark("p", "full").unwrap(),
            Some(("int".to_string(), 42))
        );
    }

    #[test]
    fn migrates_version_1_with_a_watermarks_table_already_there() {
        // Builds between the delta strategy and version 2 created the table
        // on first use without bumping the version.
        let dir = tempfile::tempdir().unwrap();
        version_1_store(dir.path());
        Connection::open(dir.path().join("state.db"))
            .unwrap()
            .execute_batch(
                "CREATE TABLE watermarks (pipeline TEXT NOT NULL, strategy TEXT NOT NULL, kind TEXT NOT NULL,
                    value INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (pipeline, strategy));
                 INSERT INTO watermarks VALUES ('p', 'delta', 'int', 5, '2024-01-01T12:00:00.000000Z');",
            )
            .unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.version().unwrap(), STATE_VERSION);
        assert_eq!(
            s.watermark("p", "delta").unwrap(),
            Some(("int".to_string(), 5))
        );
    }

    #[test]
    fn refuses_a_file_that_is_not_sqlite_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        for content in [
            b"this is not a database\n".to_vec(),
            (0..4096u32).map(|i| (i * 31 % 251) as u8).collect(),
        ] {
            std::fs::write(&path, &content).unwrap();
            for result in [
                StateStore::open(dir.path()).err(),
                StateStore::open_existing(dir.path()).err(),
            ] {
                let err = result.expect("a corrupt store is refused");
                assert_eq!(
                    err.to_string(),
                    format!(
                        "state store {}: not a SyncHub state store (file is not a database); move it away or pass another --state-dir",
                        path.display()
                    )
                );
            }
            assert_eq!(std::fs::read(&path).unwrap(), content);
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, ["state.db"]);
        }
    }

    #[test]
    fn refuses_another_programs_database() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("CREATE TABLE customers (id INTEGER)")
            .unwrap();
        drop(conn);
        let err = StateStore::open(dir.path()).err().unwrap();
        assert!(
            err.to_string().ends_with(
                "not a SyncHub state store (it is an SQLite database with a table \"customers\" and no SyncHub version); move it away or pass another --state-dir"
            ),
            "{err}"
        );
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
    }

    #[test]
    fn open_existing_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(StateStore::open_existing(&state).unwrap().is_none());
        assert!(!state.exists());
    }

    #[test]
    fn watermark_kind_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.set_watermark("p", "delta", "micros", 1_705_320_000_000_000, None)
            .unwrap();
        assert!(s.set_watermark("p", "delta", "float", 1, None).is_err());
        let state = s.pipeline_state("p", None).unwrap();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].strategy, "delta");
        assert_eq!(state[0].last_run, None);
        let w = state[0].watermark.as_ref().unwrap();
        assert_eq!(w.display, "2024-01-15 12:00:00.000000 UTC");
    }

    #[test]
    fn reset_removes_one_strategy_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        for (run, strategy) in [("r1", "full"), ("r2", "delta"), ("r3", "delta")] {
            s.start_run(run, "p", strategy).unwrap();
            s.record_partition(run, "a", 1, 0, 0).unwrap();
            s.record_partition(run, "b", 1, 0, 0).unwrap();
        }
        s.start_run("q1", "q", "delta").unwrap();
        s.record_partition("q1", "a", 1, 0, 0).unwrap();
        s.set_watermark("p", "delta", "int", 7, None).unwrap();
        s.set_watermark("q", "delta", "int", 8, None).unwrap();

        let r = s.reset("p", Some("delta")).unwrap();
        assert_eq!(
            r.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["r2", "r3"]
        );
        assert_eq!(r.partitions, 4);
        assert_eq!(r.watermarks, ["delta"]);
        assert_eq!(s.strategies("p").unwrap(), ["full"]);
        assert_eq!(s.resumable_run("p", "delta").unwrap(), None);

        let r = s.reset("p", None).unwrap();
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.partitions, 2);
        assert!(s.reset("p", None).unwrap().is_empty());
        // Other pipelines are untouched.
        assert_eq!(s.pipelines().unwrap(), ["q"]);
        assert_eq!(s.completed_partitions("q1").unwrap().len(), 1);
        assert_eq!(
            s.watermark("q", "delta").unwrap(),
            Some(("int".to_string(), 8))
        );
    }

    #[test]
    fn removing_old_runs_keeps_the_latest_and_running_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let summary = serde_json::json!({});
        for (run, strategy, status) in [
            ("r1", "full", "completed"),
            ("r2", "full", "failed"),
            ("r3", "full", "completed"),
            ("r4", "delta", "running"),
            ("r5", "delta", "completed"),
            ("r6", "hash", "completed"),
        ] {
            s.start_run(run, "p", strategy).unwrap();
            s.record_partition(run, "a", 1, 0, 0).unwrap();
            if status != "running" {
                s.finish_run(run, status, None, &summary).unwrap();
            }
        }
        // r4 started before r5 but never finished (its process died).
        let (removed, partitions) = s.remove_runs_before(&now()).unwrap();
        let ids: Vec<_> = removed.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(partitions, 2);
        let left: Vec<_> = s
            .history("p", None, 100)
            .unwrap()
            .into_iter()
            .map(|r| r.run.run_id)
            .collect();
        assert_eq!(left, ["r6", "r5", "r4", "r3"]);
        // Nothing is older than a day.
        let yesterday = format_time(chrono::Utc::now() - chrono::Duration::days(1));
        assert!(s.remove_runs_before(&yesterday).unwrap().0.is_empty());
    }
}
