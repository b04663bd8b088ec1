//! The state store: runs and their committed partitions, in a SQLite file
//! under the state directory.
//!
//! For transactional destinations the authoritative checkpoint is the row the
//! sink writes in the same transaction as the data; this store mirrors it for
//! history and status, and a resumed run takes the union of both.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::EngineError;

/// Bumped when the layout changes; a newer file is refused, not rewritten.
pub const STATE_VERSION: i64 = 1;

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

impl StateStore {
    /// Opens (creating when missing) `<dir>/state.db`.
    pub fn open(dir: &Path) -> Result<StateStore, EngineError> {
        let path = dir.join("state.db");
        let err = |message: String| EngineError::State {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create folder: {e}")))?;
        let conn = Connection::open(&path).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| err(e.to_string()))?;
        let store = StateStore { conn, path };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::State {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn migrate(&self) -> Result<(), EngineError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| {
                self.err(format!(
                    "not a SyncHub state store ({e}); move it away or pass another --state-dir"
                ))
            })?;
        if version > STATE_VERSION {
            return Err(self.err(format!(
                "written by a newer SyncHub (state version {version}, this build reads {STATE_VERSION}); upgrade synchub or use another --state-dir"
            )));
        }
        if version == STATE_VERSION {
            return Ok(());
        }
        self.conn
            .execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS runs (
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
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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
                r.filter(|(_, status)| status != "completed")
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

    pub fn record_partition(
        &self,
        run_id: &str,
        partition_id: &str,
        inserted: u64,
        updated: u64,
        unchanged: u64,
    ) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT INTO partitions (run_id, partition_id, committed_at, rows_inserted, rows_updated, rows_unchanged) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, partition_id) DO NOTHING",
                params![run_id, partition_id, now(), inserted as i64, updated as i64, unchanged as i64],
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

    pub fn runs(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, EngineError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, pipeline, strategy, status, started_at, finished_at, error FROM runs \
                 WHERE pipeline = ?1 ORDER BY started_at DESC, rowid DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![pipeline, limit as i64], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    pipeline: r.get(1)?,
                    strategy: r.get(2)?,
                    status: r.get(3)?,
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                    error: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
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

/// Delta watermarks, and opening a store only when it exists.
impl StateStore {
    /// The store in `dir` if there is one; `plan` must not create state.
    pub fn open_existing(dir: &Path) -> Result<Option<StateStore>, EngineError> {
        if dir.join("state.db").is_file() {
            StateStore::open(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ensure_watermarks(&self) -> Result<(), EngineError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS watermarks (
                    pipeline TEXT NOT NULL, strategy TEXT NOT NULL, kind TEXT NOT NULL,
                    value INTEGER NOT NULL, updated_at TEXT NOT NULL,
                    PRIMARY KEY (pipeline, strategy))",
            )
            .map_err(|e| self.err(e))
    }

    /// The stored delta watermark: its kind (`int` or `micros`) and value.
    pub fn watermark(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<(String, i64)>, EngineError> {
        self.ensure_watermarks()?;
        self.conn
            .query_row(
                "SELECT kind, value FROM watermarks WHERE pipeline = ?1 AND strategy = ?2",
                params![pipeline, strategy],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_watermark(
        &self,
        pipeline: &str,
        strategy: &str,
        kind: &str,
        value: i64,
    ) -> Result<(), EngineError> {
        self.ensure_watermarks()?;
        self.conn
            .execute(
                "INSERT INTO watermarks (pipeline, strategy, kind, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (pipeline, strategy) DO UPDATE SET kind = excluded.kind, value = excluded.value, updated_at = excluded.updated_at",
                params![pipeline, strategy, kind, value, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
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
                "state store {}: written by a newer SyncHub (state version 99, this build reads 1); upgrade synchub or use another --state-dir",
                dir.path().join("state.db").display()
            )
        );
    }
}
