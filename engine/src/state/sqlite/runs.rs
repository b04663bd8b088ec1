//! Run bookkeeping in SQL: runs started, resumed, finished or abandoned, and
//! the partitions they committed.

use std::collections::HashSet;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};

use super::{now, Failure};
use crate::state::runs::RunRecord;
use crate::state::status::RunStatus;

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: crate::error::EngineError| FromSqlError::Other(Box::new(e)))
    }
}

pub(super) fn resumable_run(
    c: &Connection,
    pipeline: &str,
    strategy: &str,
) -> Result<Option<String>, Failure> {
    let latest = c
        .query_row(
            "SELECT run_id, status FROM runs WHERE pipeline = ?1 AND strategy = ?2 \
             ORDER BY started_at DESC, rowid DESC LIMIT 1",
            params![pipeline, strategy],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, RunStatus>(1)?)),
        )
        .optional()?;
    Ok(latest
        .filter(|(_, status)| status.is_resumable())
        .map(|(id, _)| id))
}

pub(super) fn start_run(
    c: &Connection,
    run_id: &str,
    pipeline: &str,
    strategy: &str,
) -> Result<(), Failure> {
    c.execute(
        "INSERT INTO runs (run_id, pipeline, strategy, status, started_at) VALUES (?1, ?2, ?3, ?5, ?4) \
         ON CONFLICT (run_id) DO UPDATE SET status = ?5, finished_at = NULL, error = NULL",
        params![run_id, pipeline, strategy, now(), RunStatus::Running],
    )?;
    Ok(())
}

pub(super) fn set_partitions_total(
    c: &Connection,
    run_id: &str,
    total: u64,
) -> Result<(), Failure> {
    c.execute(
        "UPDATE runs SET partitions_total = ?2 WHERE run_id = ?1",
        params![run_id, total as i64],
    )?;
    Ok(())
}

pub(super) fn record_partition(
    c: &Connection,
    run_id: &str,
    partition_id: &str,
    stats: &connectors::WriteStats,
) -> Result<(), Failure> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    c.execute(
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
    )?;
    Ok(())
}

pub(super) fn completed_partitions(
    c: &Connection,
    run_id: &str,
) -> Result<HashSet<String>, Failure> {
    let mut stmt = c.prepare("SELECT partition_id FROM partitions WHERE run_id = ?1")?;
    let ids = stmt
        .query_map([run_id], |r| r.get::<_, String>(0))?
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(ids)
}

pub(super) fn abandon_run(c: &Connection, run_id: &str, why: &str) -> Result<(), Failure> {
    c.execute(
        "UPDATE runs SET status = ?4, finished_at = ?2, error = ?3 \
         WHERE run_id = ?1 AND status <> ?5",
        params![
            run_id,
            now(),
            why,
            RunStatus::Abandoned,
            RunStatus::Completed
        ],
    )?;
    Ok(())
}

pub(super) fn finish_run(
    c: &Connection,
    run_id: &str,
    status: RunStatus,
    error: Option<&str>,
    summary: &str,
) -> Result<(), Failure> {
    c.execute(
        "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4, summary = ?5 WHERE run_id = ?1",
        params![run_id, status, now(), error, summary],
    )?;
    Ok(())
}

pub(super) fn has_run(c: &Connection, run_id: &str) -> Result<bool, Failure> {
    Ok(
        c.query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

/// A `RunRecord` from the first seven columns of a row: `run_id, pipeline,
/// strategy, status, started_at, finished_at, error`.
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

#[cfg(test)]
mod tests {
    use crate::state::{RunStatus, SqliteStateStore, StateBackend};
    use std::collections::HashSet;

    #[tokio::test]
    async fn resumes_only_unfinished_runs() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        assert_eq!(s.resumable_run("p", "full").await.unwrap(), None);
        s.start_run("r1", "p", "full").await.unwrap();
        let ten = connectors::WriteStats {
            inserted: 10,
            ..Default::default()
        };
        s.record_partition("r1", "id_0_10", &ten).await.unwrap();
        assert_eq!(
            s.resumable_run("p", "full").await.unwrap().as_deref(),
            Some("r1")
        );
        assert_eq!(
            s.completed_partitions("r1").await.unwrap(),
            HashSet::from(["id_0_10".to_string()])
        );
        s.finish_run("r1", RunStatus::Completed, None, &serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(s.resumable_run("p", "full").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_status_this_build_does_not_know_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        s.start_run("r1", "p", "full").await.unwrap();
        s.call(|c| Ok(c.execute("UPDATE runs SET status = 'paused'", [])?))
            .await
            .unwrap();
        let err = s.resumable_run("p", "full").await.unwrap_err().to_string();
        assert!(err.contains("unknown run status \"paused\""), "{err}");
    }
}
