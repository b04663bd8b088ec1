//! The JSON shapes of the state store's reports, one definition for
//! `synchub state show|history --output json` and the HTTP API.

use std::path::Path;

use serde_json::{json, Value};

use super::reports::StrategyState;
use super::runs::RunInfo;

/// The store's file, as the reports name it.
pub fn store_path(state_dir: &Path) -> String {
    state_dir.join("state.db").display().to_string()
}

fn progress_json(r: &RunInfo) -> Value {
    json!({
        "partitions_done": r.partitions_done,
        "partitions_total": r.partitions_total,
    })
}

/// One run: a line of the history, the last run of a strategy.
pub fn run_json(r: &RunInfo) -> Value {
    json!({
        "run_id": r.run.run_id,
        "strategy": r.run.strategy,
        "status": r.run.status,
        "started_at": r.run.started_at,
        "finished_at": r.run.finished_at,
        "duration_seconds": r.duration_seconds,
        "rows": r.rows,
        "rows_inserted": r.rows_inserted,
        "rows_updated": r.rows_updated,
        "rows_unchanged": r.rows_unchanged,
        "rows_deleted": r.rows_deleted,
        "partitions_done": r.partitions_done,
        "partitions_total": r.partitions_total,
        "error": r.run.error,
    })
}

/// One strategy's state: its last run, how far it got, its watermark.
pub fn strategy_state_json(s: &StrategyState) -> Value {
    json!({
        "strategy": s.strategy,
        "last_run": s.last_run.as_ref().map(run_json),
        "progress": s.last_run.as_ref().map(progress_json),
        "watermark": s.watermark,
        "runs": s.runs,
    })
}

/// A pipeline's state (`state show --output json`): a member per strategy.
pub fn pipeline_state_json(
    pipeline: &str,
    state_dir: &Path,
    strategies: &[StrategyState],
) -> Value {
    json!({
        "pipeline": pipeline,
        "state_store": store_path(state_dir),
        "strategies": strategies.iter().map(strategy_state_json).collect::<Vec<_>>(),
    })
}

/// A pipeline's runs, newest first (`history --output json`).
pub fn history_json(pipeline: &str, runs: &[RunInfo]) -> Value {
    json!({
        "pipeline": pipeline,
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
    })
}
