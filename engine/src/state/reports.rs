//! What `state show`, `history`, `state reset` and `state cleanup` report,
//! what they ask of a state store, and the cleanup of a state directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Serialize;

use super::format_time;
use super::runs::{RunInfo, RunRecord};
use super::sqlite::SqliteStateStore;
use super::watermarks::WatermarkInfo;
use crate::error::EngineError;
use crate::lock::{FileLock, Lock, Wait};

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

/// What `synchub history` and `synchub state show`, `state reset` and
/// `state cleanup` ask of a state store. Only the CLI uses these; a run goes
/// through `StateBackend`.
#[async_trait]
pub trait StateReports: Send + Sync {
    /// The runs of `pipeline` (of one strategy, or all), newest first, with
    /// what each committed.
    async fn history(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunInfo>, EngineError>;

    /// Pipelines with runs or watermarks in this store, sorted.
    async fn pipelines(&self) -> Result<Vec<String>, EngineError>;

    /// Strategies of `pipeline` with runs or a watermark, sorted.
    async fn strategies(&self, pipeline: &str) -> Result<Vec<String>, EngineError>;

    /// The state of each strategy of `pipeline` (or of one): its last run,
    /// how far that got, and the watermark.
    async fn pipeline_state(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
    ) -> Result<Vec<StrategyState>, EngineError>;

    /// Forgets `pipeline` (or one of its strategies): runs, their committed
    /// partitions and the watermark, all or nothing. The next run starts a
    /// new run id, so the destination's checkpoints (kept per run id) no
    /// longer apply and every partition is synced again.
    async fn reset(
        &self,
        pipeline: &str,
        strategy: Option<&str>,
    ) -> Result<ResetReport, EngineError>;

    /// Removes completed and failed runs that finished before `cutoff`,
    /// with their partitions; returns them and how many partitions went.
    /// The latest run of each pipeline and strategy is kept whatever its age
    /// (it is what `state show` reports and what a failed run resumes), and
    /// so is every run still `running`.
    async fn remove_runs_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<RunRecord>, u64), EngineError>;

    /// Whether the store knows `run_id`.
    async fn has_run(&self, run_id: &str) -> Result<bool, EngineError>;
}

/// `synchub state cleanup --days N`: removes completed and failed runs that
/// finished more than `days` days ago (never the latest run of a pipeline and
/// strategy, never a run still going), their partitions, and their metrics
/// and log files; also metrics and logs of runs the store no longer knows
/// (removed by `state reset`) that started before the cutoff. A state
/// directory without a store is left as it is.
pub async fn cleanup(state_dir: &Path, days: u32) -> Result<CleanupReport, EngineError> {
    let cutoff_time = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let cutoff = format_time(cutoff_time);
    let mut report = CleanupReport {
        days,
        cutoff: cutoff.clone(),
        ..CleanupReport::default()
    };
    let Some(store) = SqliteStateStore::open_existing(state_dir).await? else {
        return Ok(report);
    };
    // Held until the end: no run of any pipeline starts while its runs and
    // files are being removed, and none may be running now.
    let locks = FileLock::new(state_dir);
    let mut held = Vec::new();
    for pipeline in store.pipelines().await? {
        held.push(locks.acquire(&pipeline, Wait::No).await?);
    }
    let (runs, partitions) = store.remove_runs_before(cutoff_time).await?;
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
        if old && !store.has_run(&run_id).await? {
            let removed = crate::records::remove_run_files(state_dir, &pipeline, &run_id);
            report.files.extend(removed.removed);
            report.warnings.extend(removed.failed);
        }
    }
    report.files.sort();
    drop(held);
    Ok(report)
}
