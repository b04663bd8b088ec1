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

mod migrations;
mod reports;
mod runs;
mod watermarks;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::EngineError;

pub use migrations::STATE_VERSION;
pub use reports::{cleanup, CleanupReport, ResetReport, StrategyState};
pub use runs::{new_run_id, RunInfo, RunRecord};
pub use watermarks::{display_watermark, WatermarkBinding, WatermarkInfo};

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
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
}

/// SQLite's "database is locked" or "database is busy", as an error of
/// this store reports it.
fn is_busy(e: &EngineError) -> bool {
    matches!(e, EngineError::State { message, .. }
        if message.contains("database is locked") || message.contains("database is busy"))
}

fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn now() -> String {
    format_time(chrono::Utc::now())
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
    fn open_existing_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(StateStore::open_existing(&state).unwrap().is_none());
        assert!(!state.exists());
    }
}
