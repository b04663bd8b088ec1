//! What a run may trust of the runs before it: which committed partitions
//! it skips, and whether a delta watermark still describes the destination.
//!
//! Both are decided from the destination itself. A checkpoint is trusted
//! only when it was written under the same sync fingerprint into the same
//! table (`Sink::table_identity`), and that table is not empty now; a
//! watermark only when the same holds for the run that set it. The state
//! store alone never makes a run skip anything.

use std::collections::HashSet;

use connectors::{RunIdentity, Sink};
use planner::{Pipeline, Plan, StrategyKind, SyncFingerprint};

use crate::error::EngineError;
use crate::state::{new_run_id, StateBackend, WatermarkBinding};

/// The run to do: a resumed one with the partitions it may skip, or a new one.
#[derive(Debug)]
pub struct Resume {
    pub run_id: String,
    pub committed: HashSet<String>,
    /// Why an unfinished run is not resumed, when it is not.
    pub starting_over: Option<String>,
}

/// Picks the run: the latest unfinished run of the pipeline's strategy when
/// its checkpoints in the destination can be trusted, else a new one.
pub async fn choose_run(
    state: &dyn StateBackend,
    sink: &mut dyn Sink,
    pipeline: &Pipeline,
    plan: &Plan,
    fingerprint: &SyncFingerprint,
) -> Result<Resume, EngineError> {
    let fresh = |starting_over| Resume {
        run_id: new_run_id(),
        committed: HashSet::new(),
        starting_over,
    };
    let Some(candidate) = state.resumable_run(&pipeline.name, &plan.strategy).await? else {
        return Ok(fresh(None));
    };
    let run = RunIdentity {
        pipeline: pipeline.name.clone(),
        strategy: plan.strategy.clone(),
        run_id: candidate.clone(),
        fingerprint: fingerprint.run.clone(),
    };
    let checkpoints = sink.checkpoints(&run).await?;
    if checkpoints.is_empty() {
        return Ok(Resume {
            run_id: candidate,
            committed: HashSet::new(),
            starting_over: None,
        });
    }
    let table = pipeline.destination.display_name();
    let identity = sink.table_identity();
    let why = if checkpoints
        .iter()
        .any(|c| c.fingerprint.as_deref() != Some(fingerprint.run.as_str()))
    {
        Some(format!(
            "the pipeline's config (columns, types, filters, joins or partitioning) changed since run {candidate}"
        ))
    } else if checkpoints
        .iter()
        .any(|c| c.table_identity.as_deref() != Some(identity.as_str()))
    {
        Some(format!(
            "destination table {table} was dropped and created again, truncated or rewritten since run {candidate}"
        ))
    } else if sink.started_empty() {
        Some(format!(
            "destination table {table} is empty, but run {candidate} committed {} partition(s) to it: it was emptied since",
            checkpoints.len()
        ))
    } else {
        None
    };
    match why {
        Some(why) => {
            let why = format!("{why}; starting over");
            state.abandon_run(&candidate, &why).await?;
            Ok(fresh(Some(why)))
        }
        None => Ok(Resume {
            run_id: candidate,
            committed: checkpoints.into_iter().map(|c| c.partition_id).collect(),
            starting_over: None,
        }),
    }
}

/// Refuses a delta whose watermark no longer describes the destination: rows
/// below it would never be read again.
pub fn check_watermark(
    binding: Option<&WatermarkBinding>,
    sink: &dyn Sink,
    pipeline: &Pipeline,
    plan: &Plan,
    fingerprint: &SyncFingerprint,
) -> Result<(), EngineError> {
    let Some(b) = binding else {
        return Ok(());
    };
    let table = pipeline.destination.display_name();
    let set_by = format!(
        "the watermark of strategy {} was set by run {}",
        plan.strategy, b.run_id
    );
    let why = if b.rows_fingerprint != fingerprint.rows {
        format!("the pipeline's config (columns, types, filters or joins) changed since {set_by}")
    } else if b.dest_identity != sink.table_identity() {
        format!(
            "destination table {table} was dropped and created again, truncated or rewritten since {set_by}"
        )
    } else if b.dest_nonempty && sink.started_empty() {
        format!("destination table {table} is empty, but it held rows when {set_by}: it was emptied since")
    } else {
        return Ok(());
    };
    let full = pipeline
        .strategies
        .iter()
        .find(|s| s.kind == StrategyKind::Full)
        .map_or("full", |s| s.name.as_str());
    Err(EngineError::StaleWatermark(format!(
        "{why}; a delta run would never read the rows below the watermark. Run a full sync once \
         (synchub run {} --strategy {full}) or forget the watermark (synchub state reset {} --strategy {}), \
         then run the delta again",
        pipeline.file.display(),
        pipeline.name,
        plan.strategy
    )))
}
