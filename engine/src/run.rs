//! What a run is asked to do and what it did: its options, loading and
//! planning a pipeline, and the summary it ends with. The run itself is the
//! coordinator's ([`crate::coordinator`]) and its executors'.

use std::path::PathBuf;

use connectors::open_source;
use planner::plan::DestinationProbe;
use planner::{Pipeline, Plan};
use serde::Serialize;

use crate::error::EngineError;
use crate::lock::Wait;
use crate::partitions::{run_partitions, RunPartitions, Watermark};
use crate::runtime::OperatorStats;
use crate::state::{RunStatus, SqliteStateStore, StateBackend};

pub use crate::run_context::Cancel;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub pipeline_file: PathBuf,
    pub strategy: Option<String>,
    pub datastores: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Whether to wait for a run of the same pipeline that holds its lock.
    pub wait: Wait,
    /// Cancelled by the caller (the CLI on SIGINT or SIGTERM) to stop the
    /// run: the open partitions roll back, the run ends `cancelled`.
    pub cancel: Cancel,
    /// Run even a pipeline or strategy its config disables.
    pub force: bool,
    /// A pipeline lock shared by coordinators on every host (Redis), taken
    /// before the state directory's.
    pub cluster_lock: Option<crate::lock::RedisLock>,
}

/// A pipeline or strategy switched off in its config is not run: `enabled:
/// false` on the pipeline, on the strategy named, or on every strategy when
/// none is named (which would otherwise fall back to a full sync).
pub(crate) fn refuse_disabled(
    pipeline: &Pipeline,
    plan: &Plan,
    named: bool,
) -> Result<(), EngineError> {
    let file = pipeline.file.display();
    let why = if !pipeline.enabled {
        format!(
            "pipeline {} is disabled (enabled: false in {file})",
            pipeline.name
        )
    } else if let Some(s) = pipeline
        .strategies
        .iter()
        .find(|s| s.name == plan.strategy && !s.enabled)
    {
        format!(
            "strategy {} of pipeline {} is disabled (enabled: false in {file})",
            s.name, pipeline.name
        )
    } else if !named
        && !pipeline.strategies.is_empty()
        && pipeline.strategies.iter().all(|s| !s.enabled)
    {
        format!(
            "every strategy of pipeline {} is disabled (enabled: false in {file})",
            pipeline.name
        )
    } else {
        return Ok(());
    };
    Err(EngineError::Disabled(format!(
        "{why}; not running it. Run it anyway with --force, or set enabled: true"
    )))
}

/// What a run did; printed by `synchub run --output json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub strategy: String,
    pub run_id: String,
    pub status: RunStatus,
    pub rows_read: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub rows_unchanged: u64,
    /// An aggregate sync: the groups this run re-computed and wrote
    /// (inserted, updated or found unchanged), and those it deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_recomputed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_deleted: Option<u64>,
    pub partitions_total: u64,
    pub partitions_done: u64,
    pub partitions_skipped: u64,
    /// Partitions written at the same time (`max_concurrent_partitions`,
    /// at most one per partition to do, one for a single-writer destination).
    pub lanes: u64,
    pub duration_seconds: f64,
    /// From the start of the run to the first partition taken (the whole
    /// run when there was none): loading, locking, connecting, planning.
    pub setup_seconds: f64,
    /// From the last partition committed to the end of the run: moving
    /// the watermark and recording the run. With the process's own start
    /// and exit, these two are the run's fixed cost.
    pub wrapup_seconds: f64,
    /// The plan's operators as `synchub plan` prints them: the chain this
    /// run built, one operator per node.
    pub dag: Vec<String>,
    pub operators: Vec<OperatorStats>,
}

/// A finished run: its summary, and the error when it failed.
pub struct RunOutcome {
    pub summary: RunSummary,
    pub error: Option<EngineError>,
}

/// Loads and plans a pipeline; a database is read only for the types of
/// columns written without `data_type`.
pub async fn load(opts: &RunOptions) -> Result<(Pipeline, Plan), EngineError> {
    // Only the datastores this pipeline names are resolved: others sharing
    // the file may be of a type to come, or need variables it has no use for.
    let pipeline =
        crate::load::load_pipeline(&opts.pipeline_file, opts.datastores.as_deref()).await?;
    let plan = Plan::compile(&pipeline, opts.strategy.as_deref())?;
    Ok((pipeline, plan))
}

/// The plan and, from the source's current bounds, the partitions it would run.
pub async fn plan_pipeline(opts: &RunOptions) -> Result<(Plan, RunPartitions), EngineError> {
    let (pipeline, plan) = load(opts).await?;
    let mut source = open_source(&pipeline.source, pipeline.read_columns()).await?;
    source.check().await?;
    let watermark = match SqliteStateStore::open_existing(&opts.state_dir).await? {
        Some(state) => stored_watermark(&state, &pipeline.name, &plan).await?,
        None => None,
    };
    let probe = DestinationProbe {
        empty: connectors::registry::probe_empty(&pipeline.destination).await?,
        from_watermark: watermark.is_some(),
    };
    let plan = plan.for_destination(&pipeline, probe);
    let deletes_from = (plan.deletes_missing() && !probe.empty).then_some(&pipeline);
    let parts = run_partitions(&plan, source.as_mut(), watermark, deletes_from).await?;
    Ok((plan, parts))
}

/// The delta watermark of the plan's strategy, checked against its cursor.
pub(crate) async fn stored_watermark(
    state: &dyn StateBackend,
    pipeline: &str,
    plan: &Plan,
) -> Result<Option<Watermark>, EngineError> {
    let Some(delta) = &plan.delta else {
        return Ok(None);
    };
    let Some((kind, value)) = state.watermark(pipeline, &plan.strategy).await? else {
        return Ok(None);
    };
    let expected = match delta.cursor.kind {
        planner::types::PartitionKind::Integer => "int",
        planner::types::PartitionKind::Datetime => "micros",
    };
    match Watermark::from_stored(&kind, value) {
        Some(w) if kind == expected => Ok(Some(w)),
        _ => Err(EngineError::State {
            path: state.location(),
            message: format!(
                "the watermark of {pipeline}/{} is a {kind} value but the cursor {} is now {expected};                  run `synchub state reset {pipeline} --strategy {}` to start the delta over",
                plan.strategy, delta.cursor.name, plan.strategy
            ),
        }),
    }
}

/// The destination table read through a source connector: its own columns,
/// no joins or filters. Used to compare it with the source. A stored row
/// hash column is read as stored: its checksums and row hashes use it
/// instead of hashing the destination rows.
pub async fn destination_as_source(
    pipeline: &Pipeline,
) -> Result<Box<dyn connectors::Source>, EngineError> {
    let mut table = pipeline.destination.clone();
    table.joins.clear();
    table.filters.clear();
    table.alias = None;
    let columns: Vec<planner::model::MappedColumn> = pipeline
        .columns
        .iter()
        .map(|c| planner::model::MappedColumn {
            source: c.dest.clone(),
            source_ref: planner::ColumnRef::bare(&c.dest),
            // The destination holds the transform's values.
            expr: None,
            stored_hash: match c.stored_hash {
                planner::model::StoredHash::No => planner::model::StoredHash::No,
                _ => planner::model::StoredHash::Read,
            },
            ..c.clone()
        })
        .collect();
    Ok(open_source(&table, &columns).await?)
}
