//! Run bookkeeping: runs started, resumed, finished or abandoned, and the
//! partitions they committed.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, StateStore};
use crate::error::EngineError;

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

impl StateStore {
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

    /// Whether the store knows `run_id`.
    pub fn has_run(&self, run_id: &str) -> Result<bool, EngineError> {
        self.conn
            .query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }
}

pub(super) fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
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
}
