//! The reports in SQL: what `state show` and `history` read, and the
//! removals behind `state reset` and `state cleanup`.

use async_trait::async_trait;
use rusqlite::{params, Connection, ToSql};

use super::runs::{has_run, run_record};
use super::watermarks::watermark_info;
use super::{write, Failure, SqliteStateStore};
use crate::error::EngineError;
use crate::state::reports::{ResetReport, StateReports, StrategyState};
use crate::state::runs::{RunInfo, RunRecord};
use crate::state::status::RunStatus;

#[async_trait]
impl StateReports for SqliteStateStore {
    async fn history(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunInfo>, EngineError> {
        let (pipeline, strategy) = (pipeline.to_string(), strategy.map(str::to_string));
        self.call(move |c| history(c, &pipeline, strategy.as_deref(), limit))
            .await
    }

    async fn pipelines(&self) -> Result<Vec<String>, EngineError> {
        self.call(|c| {
            strings(
                c,
                "SELECT pipeline FROM runs UNION SELECT pipeline FROM watermarks ORDER BY 1",
                params![],
            )
        })
        .await
    }

    async fn strategies(&self, pipeline: &str) -> Result<Vec<String>, EngineError> {
        let pipeline = pipeline.to_string();
        self.call(move |c| strategies(c, &pipeline)).await
    }

    async fn pipeline_state(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
    ) -> Result<Vec<StrategyState>, EngineError> {
        let (pipeline, strategy) = (pipeline.to_string(), strategy.map(str::to_string));
        self.call(move |c| pipeline_state(c, &pipeline, strategy.as_deref()))
            .await
    }

    async fn reset(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
    ) -> Result<ResetReport, EngineError> {
        let (pipeline, strategy) = (pipeline.to_string(), strategy.map(str::to_string));
        self.call(move |c| reset(c, &pipeline, strategy.as_deref()))
            .await
    }

    async fn remove_runs_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<RunRecord>, u64), EngineError> {
        let cutoff = crate::state::format_time(cutoff);
        self.call(move |c| remove_runs_before(c, &cutoff)).await
    }

    async fn has_run(&self, run_id: &str) -> Result<bool, EngineError> {
        let run_id = run_id.to_string();
        self.call(move |c| has_run(c, &run_id)).await
    }
}

fn history(
    c: &Connection,
    pipeline: &str,
    strategy: Option<&str>,
    limit: usize,
) -> Result<Vec<RunInfo>, Failure> {
    let mut stmt = c.prepare(
        "SELECT r.run_id, r.pipeline, r.strategy, r.status, r.started_at, r.finished_at, r.error, \
                r.summary, r.partitions_total, COUNT(p.partition_id), \
                COALESCE(SUM(p.rows_inserted), 0), COALESCE(SUM(p.rows_updated), 0), \
                COALESCE(SUM(p.rows_unchanged), 0), COALESCE(SUM(p.rows_deleted), 0) \
         FROM runs r LEFT JOIN partitions p ON p.run_id = r.run_id \
         WHERE r.pipeline = ?1 AND (?2 IS NULL OR r.strategy = ?2) \
         GROUP BY r.run_id ORDER BY r.started_at DESC, r.rowid DESC LIMIT ?3",
    )?;
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
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn strategies(c: &Connection, pipeline: &str) -> Result<Vec<String>, Failure> {
    strings(
        c,
        "SELECT strategy FROM runs WHERE pipeline = ?1 \
         UNION SELECT strategy FROM watermarks WHERE pipeline = ?1 ORDER BY 1",
        params![pipeline],
    )
}

fn strings(
    c: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<String>, Failure> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn pipeline_state(
    c: &Connection,
    pipeline: &str,
    strategy: Option<&str>,
) -> Result<Vec<StrategyState>, Failure> {
    let mut out = Vec::new();
    for s in strategies(c, pipeline)? {
        if strategy.is_some_and(|want| want != s) {
            continue;
        }
        let runs: i64 = c.query_row(
            "SELECT COUNT(*) FROM runs WHERE pipeline = ?1 AND strategy = ?2",
            params![pipeline, s],
            |r| r.get(0),
        )?;
        out.push(StrategyState {
            last_run: history(c, pipeline, Some(&s), 1)?.into_iter().next(),
            runs: runs.max(0) as u64,
            watermark: watermark_info(c, pipeline, &s)?,
            strategy: s,
        });
    }
    Ok(out)
}

fn reset(c: &Connection, pipeline: &str, strategy: Option<&str>) -> Result<ResetReport, Failure> {
    write(c, |c| {
        let runs = {
            let mut stmt = c.prepare(
                "SELECT run_id, pipeline, strategy, status, started_at, finished_at, error FROM runs \
                 WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2) ORDER BY started_at, rowid",
            )?;
            let rows = stmt
                .query_map(params![pipeline, strategy], run_record)?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let watermarks = {
            let mut stmt = c.prepare(
                "SELECT strategy FROM watermarks WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2) ORDER BY strategy",
            )?;
            let rows = stmt
                .query_map(params![pipeline, strategy], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let partitions = c.execute(
            "DELETE FROM partitions WHERE run_id IN \
             (SELECT run_id FROM runs WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2))",
            params![pipeline, strategy],
        )?;
        c.execute(
            "DELETE FROM runs WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2)",
            params![pipeline, strategy],
        )?;
        c.execute(
            "DELETE FROM watermarks WHERE pipeline = ?1 AND (?2 IS NULL OR strategy = ?2)",
            params![pipeline, strategy],
        )?;
        // The groups of its rows (`track_moves`) are the pipeline's, not
        // one strategy's: they go with the whole pipeline's state.
        if strategy.is_none() {
            c.execute(
                "DELETE FROM row_groups WHERE pipeline = ?1",
                params![pipeline],
            )?;
            c.execute(
                "DELETE FROM row_groups_learned WHERE pipeline = ?1",
                params![pipeline],
            )?;
        }
        Ok(ResetReport {
            pipeline: pipeline.to_string(),
            strategy: strategy.map(str::to_string),
            runs,
            partitions: partitions as u64,
            watermarks,
        })
    })
}

/// `cutoff` is a time as this store writes them (`format_time`).
fn remove_runs_before(c: &Connection, cutoff: &str) -> Result<(Vec<RunRecord>, u64), Failure> {
    // Named one by one: a status this build does not know is left alone.
    let finished_statuses: Vec<RunStatus> = RunStatus::ALL
        .into_iter()
        .filter(|s| s.is_finished())
        .collect();
    let finished = (0..finished_statuses.len())
        .map(|i| format!("?{}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    write(c, |c| {
        let runs = {
            let mut stmt = c.prepare(
                &format!(
                "SELECT run_id, pipeline, strategy, status, started_at, finished_at, error FROM runs r \
                 WHERE status IN ({finished}) \
                   AND COALESCE(finished_at, started_at) < ?1 \
                   AND run_id <> (SELECT l.run_id FROM runs l \
                                  WHERE l.pipeline = r.pipeline AND l.strategy = r.strategy \
                                  ORDER BY l.started_at DESC, l.rowid DESC LIMIT 1) \
                 ORDER BY pipeline, strategy, started_at, rowid"),
            )?;
            let mut args: Vec<&dyn ToSql> = vec![&cutoff];
            args.extend(finished_statuses.iter().map(|s| s as &dyn ToSql));
            let rows = stmt
                .query_map(args.as_slice(), run_record)?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let mut partitions = 0;
        {
            let mut del_parts = c.prepare("DELETE FROM partitions WHERE run_id = ?1")?;
            let mut del_run = c.prepare("DELETE FROM runs WHERE run_id = ?1")?;
            for r in &runs {
                partitions += del_parts.execute([&r.run_id])? as u64;
                del_run.execute([&r.run_id])?;
            }
        }
        Ok((runs, partitions))
    })
}

#[cfg(test)]
mod tests {
    use crate::state::{RunStatus, SqliteStateStore, StateBackend, StateReports};

    const ONE_ROW: connectors::WriteStats = connectors::WriteStats {
        inserted: 1,
        updated: 0,
        unchanged: 0,
        deleted: 0,
    };

    #[tokio::test]
    async fn reset_removes_one_strategy_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        for (run, strategy) in [("r1", "full"), ("r2", "delta"), ("r3", "delta")] {
            s.start_run(run, "p", strategy).await.unwrap();
            s.record_partition(run, "a", &ONE_ROW).await.unwrap();
            s.record_partition(run, "b", &ONE_ROW).await.unwrap();
        }
        s.start_run("q1", "q", "delta").await.unwrap();
        s.record_partition("q1", "a", &ONE_ROW).await.unwrap();
        s.set_watermark("p", "delta", "int", 7, None).await.unwrap();
        s.set_watermark("q", "delta", "int", 8, None).await.unwrap();

        let r = s.reset("p", Some("delta")).await.unwrap();
        assert_eq!(
            r.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["r2", "r3"]
        );
        assert_eq!(r.partitions, 4);
        assert_eq!(r.watermarks, ["delta"]);
        assert_eq!(s.strategies("p").await.unwrap(), ["full"]);
        assert_eq!(s.resumable_run("p", "delta").await.unwrap(), None);

        let r = s.reset("p", None).await.unwrap();
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.partitions, 2);
        assert!(s.reset("p", None).await.unwrap().is_empty());
        // Other pipelines are untouched.
        assert_eq!(s.pipelines().await.unwrap(), ["q"]);
        assert_eq!(s.completed_partitions("q1").await.unwrap().len(), 1);
        assert_eq!(
            s.watermark("q", "delta").await.unwrap(),
            Some(("int".to_string(), 8))
        );
    }

    #[tokio::test]
    async fn removing_old_runs_keeps_the_latest_and_running_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStateStore::open(dir.path()).await.unwrap();
        let summary = serde_json::json!({});
        for (run, strategy, status) in [
            ("r1", "full", RunStatus::Completed),
            ("r2", "full", RunStatus::Failed),
            ("r3", "full", RunStatus::Completed),
            ("r4", "delta", RunStatus::Running),
            ("r5", "delta", RunStatus::Completed),
            ("r6", "hash", RunStatus::Completed),
        ] {
            s.start_run(run, "p", strategy).await.unwrap();
            s.record_partition(run, "a", &ONE_ROW).await.unwrap();
            if status.is_finished() {
                s.finish_run(run, status, None, &summary).await.unwrap();
            }
        }
        // r4 started before r5 but never finished (its process died).
        let (removed, partitions) = s.remove_runs_before(chrono::Utc::now()).await.unwrap();
        let ids: Vec<_> = removed.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(partitions, 2);
        let left: Vec<_> = s
            .history("p", None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.run.run_id)
            .collect();
        assert_eq!(left, ["r6", "r5", "r4", "r3"]);
        // Nothing is older than a day.
        let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
        assert!(s.remove_runs_before(yesterday).await.unwrap().0.is_empty());
    }
}
