//! What `state show`, `history`, `state reset` and `state cleanup` report,
//! and the removals behind the last two.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::Serialize;

use super::runs::{run_record, RunInfo, RunRecord};
use super::watermarks::WatermarkInfo;
use super::{format_time, StateStore};
use crate::error::EngineError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::now;

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
