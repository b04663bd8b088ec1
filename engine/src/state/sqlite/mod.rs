//! The state store in a SQLite file, `<state-dir>/state.db`, worked on a
//! thread of its own (`connectors::sqlite::thread`), which closes the
//! connection before the store is gone.

mod migrations;
mod reports;
mod row_groups;
mod runs;
mod watermarks;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::backend::StateBackend;
use super::status::RunStatus;
use super::watermarks::WatermarkBinding;
use crate::error::EngineError;
use connectors::sqlite::{ConnectionThread, OnLastDrop, ThreadFailure};

pub use migrations::STATE_VERSION;

/// The SQLite state store. Runs of several pipelines (several processes)
/// may share one file: writes wait for each other (busy timeout), reads go
/// on beside them (write-ahead log).
pub struct SqliteStateStore {
    conn: ConnectionThread<Failure>,
    path: PathBuf,
}

/// Why a call on the store failed, before the store's path is put to it
/// (`EngineError::State`).
#[derive(Debug)]
pub(super) struct Failure(String);

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure(message.into())
    }

    fn not_a_store(why: impl std::fmt::Display) -> Failure {
        Failure(format!(
            "not a SyncHub state store ({why}); move it away or pass another --state-dir"
        ))
    }

    /// SQLite's "database is locked" or "database is busy".
    fn is_busy(&self) -> bool {
        self.0.contains("database is locked") || self.0.contains("database is busy")
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ThreadFailure> for Failure {
    fn from(e: ThreadFailure) -> Failure {
        Failure(e.to_string())
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure(e.to_string())
    }
}

impl SqliteStateStore {
    /// Opens (creating when missing) `<dir>/state.db`.
    pub async fn open(dir: &Path) -> Result<SqliteStateStore, EngineError> {
        let dir = dir.to_path_buf();
        Self::open_file(dir.join("state.db"), move |path| {
            let io_err = |e: std::io::Error| Failure(format!("cannot create: {e}"));
            crate::files::create_private_dir(&dir).map_err(io_err)?;
            // Created here as 0600 so SQLite's journal and WAL files, which
            // take the database file's mode, are private too.
            crate::files::private_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_err)?;
            crate::files::make_private(path).map_err(io_err)?;
            connect(path, OpenFlags::SQLITE_OPEN_CREATE)
        })
        .await
    }

    /// Opens `<dir>/state.db` when it exists; creates nothing otherwise.
    pub async fn open_existing(dir: &Path) -> Result<Option<SqliteStateStore>, EngineError> {
        let path = dir.join("state.db");
        match tokio::fs::metadata(&path).await {
            Ok(_) => Self::open_file(path, |path| connect(path, OpenFlags::empty()))
                .await
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::State {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Opens the store's thread with `connect`, which runs on it.
    async fn open_file(
        path: PathBuf,
        connect: impl FnOnce(&Path) -> Result<Connection, Failure> + Send + 'static,
    ) -> Result<SqliteStateStore, EngineError> {
        let on_thread = path.clone();
        match ConnectionThread::open("state store's", OnLastDrop::Join, move || {
            connect(&on_thread)
        })
        .await
        {
            Ok(conn) => Ok(SqliteStateStore { conn, path }),
            Err(e) => Err(EngineError::State {
                path: path.display().to_string(),
                message: e.0,
            }),
        }
    }

    /// The store's file, `<state-dir>/state.db`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the store's thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, EngineError> {
        self.conn.run(f).await.map_err(|e| EngineError::State {
            path: self.path.display().to_string(),
            message: e.0,
        })
    }
}

/// Opens the connection and brings the store to this build's version.
fn connect(path: &Path, extra: OpenFlags) -> Result<Connection, Failure> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | extra;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // Runs of several pipelines share a state directory and may open a
    // new store at the same moment. SQLite answers some of what they
    // race on (switching the journal to WAL, a read turned write) with
    // "database is locked" at once instead of waiting out the busy
    // timeout: try again until the same deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match migrations::migrate(&conn).and_then(|()| write_ahead(&conn)) {
            Ok(()) => return Ok(conn),
            Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
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
fn write_ahead(conn: &Connection) -> Result<(), Failure> {
    // The mode is kept in the file: only the first opener switches it,
    // which takes a lock the others' reads would contend for.
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;
    // The last connection to close would otherwise copy the log into the
    // file and delete it, and the next run create it again: two fsyncs at
    // exit and two (the log's header and its folder) at the first commit,
    // which were most of an empty delta run's fixed cost on a slow disk.
    // The log stays instead, bounded by the automatic checkpoint (every
    // 1,000 pages) of whichever commit crosses it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

/// Runs `f` in a write transaction (taken at once, waiting for other
/// writers); rolled back when `f` fails.
fn write<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, Failure> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(v) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

fn now() -> String {
    super::format_time(chrono::Utc::now())
}

#[async_trait]
impl StateBackend for SqliteStateStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn resumable_run(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<String>, EngineError> {
        let (pipeline, strategy) = (pipeline.to_string(), strategy.to_string());
        self.call(move |c| runs::resumable_run(c, &pipeline, &strategy))
            .await
    }

    async fn start_run(
        &self,
        run_id: &str,
        pipeline: &str,
        strategy: &str,
    ) -> Result<(), EngineError> {
        let (run_id, pipeline, strategy) = (
            run_id.to_string(),
            pipeline.to_string(),
            strategy.to_string(),
        );
        self.call(move |c| runs::start_run(c, &run_id, &pipeline, &strategy))
            .await
    }

    async fn set_partitions_total(&self, run_id: &str, total: u64) -> Result<(), EngineError> {
        let run_id = run_id.to_string();
        self.call(move |c| runs::set_partitions_total(c, &run_id, total))
            .await
    }

    async fn record_partition(
        &self,
        run_id: &str,
        partition_id: &str,
        stats: &connectors::WriteStats,
    ) -> Result<(), EngineError> {
        let (run_id, partition_id, stats) = (run_id.to_string(), partition_id.to_string(), *stats);
        self.call(move |c| runs::record_partition(c, &run_id, &partition_id, &stats))
            .await
    }

    async fn completed_partitions(&self, run_id: &str) -> Result<HashSet<String>, EngineError> {
        let run_id = run_id.to_string();
        self.call(move |c| runs::completed_partitions(c, &run_id))
            .await
    }

    async fn abandon_run(&self, run_id: &str, why: &str) -> Result<(), EngineError> {
        let (run_id, why) = (run_id.to_string(), why.to_string());
        self.call(move |c| runs::abandon_run(c, &run_id, &why))
            .await
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
        summary: &serde_json::Value,
    ) -> Result<(), EngineError> {
        let (run_id, error, summary) = (
            run_id.to_string(),
            error.map(str::to_string),
            summary.to_string(),
        );
        self.call(move |c| runs::finish_run(c, &run_id, status, error.as_deref(), &summary))
            .await
    }

    async fn watermark(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<(String, i64)>, EngineError> {
        let (pipeline, strategy) = (pipeline.to_string(), strategy.to_string());
        self.call(move |c| watermarks::watermark(c, &pipeline, &strategy))
            .await
    }

    async fn set_watermark(
        &self,
        pipeline: &str,
        strategy: &str,
        kind: &str,
        value: i64,
        binding: Option<&WatermarkBinding>,
    ) -> Result<(), EngineError> {
        let (pipeline, strategy, kind, binding) = (
            pipeline.to_string(),
            strategy.to_string(),
            kind.to_string(),
            binding.cloned(),
        );
        self.call(move |c| {
            watermarks::set_watermark(c, &pipeline, &strategy, &kind, value, binding.as_ref())
        })
        .await
    }

    async fn watermark_binding(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<WatermarkBinding>, EngineError> {
        let (pipeline, strategy) = (pipeline.to_string(), strategy.to_string());
        self.call(move |c| watermarks::watermark_binding(c, &pipeline, &strategy))
            .await
    }

    async fn rebind_watermarks(
        &self,
        pipeline: &str,
        binding: &WatermarkBinding,
    ) -> Result<(), EngineError> {
        let (pipeline, binding) = (pipeline.to_string(), binding.clone());
        self.call(move |c| watermarks::rebind_watermarks(c, &pipeline, &binding))
            .await
    }

    async fn row_groups_of(
        &self,
        pipeline: &str,
        rows: Vec<String>,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| row_groups::groups_of(c, &pipeline, &rows))
            .await
    }

    async fn remember_row_groups(
        &self,
        pipeline: &str,
        pairs: Vec<(String, String)>,
    ) -> Result<(), EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| row_groups::remember(c, &pipeline, &pairs))
            .await
    }

    async fn forget_row_groups(
        &self,
        pipeline: &str,
        pairs: Vec<(String, String)>,
    ) -> Result<(), EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| row_groups::forget(c, &pipeline, &pairs))
            .await
    }

    async fn clear_row_groups(&self, pipeline: &str) -> Result<(), EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| row_groups::clear(c, &pipeline)).await
    }

    async fn set_row_groups_learned(&self, pipeline: &str) -> Result<(), EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| row_groups::set_learned(c, &pipeline))
            .await
    }

    async fn row_groups_learned(&self, pipeline: &str) -> Result<bool, EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| row_groups::learned(c, &pipeline)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap();
                        barrier.wait();
                        runtime
                            .block_on(SqliteStateStore::open(&dir))
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

    #[tokio::test]
    async fn open_existing_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(SqliteStateStore::open_existing(&state)
            .await
            .unwrap()
            .is_none());
        assert!(!state.exists());
    }
}
