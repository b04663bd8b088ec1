//! One run of a pipeline: load, plan, connect, skip what is committed, run
//! the operator chain, record the outcome.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use connectors::{open_sink, open_source, LockAttempt, RunIdentity, WriteMode};
use operators::batcher::Batcher;
use operators::change_detection::ChangeDetection;
use operators::fetch::{Fetch, FetchMode};
use operators::partition_source::{LaneSlots, PartitionQueue, PartitionSource};
use operators::populate::Populate;
use operators::{Operator, RunProgress};
use planner::partition::Partition;
use planner::plan::{DestinationProbe, OperatorSpec};
use planner::{Pipeline, Plan, SyncFingerprint};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::commits::LaneCommits;
use crate::error::EngineError;
use crate::lock::{FileLock, Lock, LockGuard, Wait};
use crate::partitions::{run_partitions, RunPartitions, Watermark};
use crate::resume::{check_watermark, choose_run, Resume};
use crate::runtime::{run_chain, OperatorStats};
use crate::state::{RunStatus, SqliteStateStore, StateBackend, WatermarkBinding};

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
}

/// A run's cancellation: a token plus the reason given with it.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Cancel {
    pub fn cancel(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

/// Resolves once `cancel` is cancelled, with its reason.
async fn cancelled(cancel: &Cancel) -> String {
    cancel.token.cancelled().await;
    cancel.reason().unwrap_or_else(|| "cancelled".to_string())
}

/// A pipeline or strategy switched off in its config is not run: `enabled:
/// false` on the pipeline, on the strategy named, or on every strategy when
/// none is named (which would otherwise fall back to a full sync).
fn refuse_disabled(pipeline: &Pipeline, plan: &Plan, named: bool) -> Result<(), EngineError> {
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

/// Takes the destination's own pipeline lock (PostgreSQL: an advisory lock,
/// which also excludes runs on other machines), waiting as `wait` says.
async fn lock_destination(
    sink: &mut dyn connectors::Sink,
    pipeline: &Pipeline,
    lock: &dyn LockGuard,
    wait: Wait,
) -> Result<(), EngineError> {
    let key = format!(
        "synchub:{}:{}",
        pipeline.name,
        pipeline.destination.display_name()
    );
    let me = lock.holder();
    let holder = format!("synchub pid {} on {}", me.pid, me.host);
    let deadline = wait.start();
    // A run killed mid-query leaves its session to the server until the
    // server next reads from it: its lock goes a moment later. Such a
    // holder (a process of this machine that no longer exists) is waited
    // for, a while, even without --wait.
    let grace = Instant::now() + DEAD_HOLDER_GRACE;
    loop {
        match sink.try_lock(&key, &holder).await? {
            LockAttempt::Acquired => return Ok(()),
            LockAttempt::Held { holder } => {
                let dead = is_dead_local_holder(&holder, &me.host);
                if !(deadline.keep_waiting() || dead && Instant::now() < grace) {
                    return Err(EngineError::AlreadyRunning {
                        pipeline: pipeline.name.clone(),
                        holder: format!("{holder}; it holds the destination's lock"),
                    });
                }
                tokio::time::sleep(crate::lock::POLL).await;
            }
        }
    }
}

/// How long a destination lock held by a dead process of this machine is
/// waited for: the server releases it once it notices the connection gone.
const DEAD_HOLDER_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a destination lock's holder (`synchub pid P on HOST, …`) is a
/// process of `host` that no longer runs. Only Linux can tell (`/proc`);
/// elsewhere every holder counts as alive.
fn is_dead_local_holder(holder: &str, host: &str) -> bool {
    let Some((pid, rest)) = holder
        .strip_prefix("synchub pid ")
        .and_then(|r| r.split_once(" on "))
    else {
        return false;
    };
    let same_host = rest.split(',').next() == Some(host);
    cfg!(target_os = "linux")
        && same_host
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
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
    pub partitions_total: u64,
    pub partitions_done: u64,
    pub partitions_skipped: u64,
    /// Partitions written at the same time (`max_concurrent_partitions`,
    /// at most one per partition to do, one for a single-writer destination).
    pub lanes: u64,
    pub duration_seconds: f64,
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
pub async fn plan_pipeline(opts: &RunOptions) -> Result<(Plan, Vec<Partition>), EngineError> {
    let (pipeline, plan) = load(opts).await?;
    let mut source = open_source(&pipeline.source, &pipeline.columns).await?;
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
    let parts = run_partitions(&plan, source.as_mut(), watermark).await?;
    Ok((plan, parts.partitions))
}

/// The delta watermark of the plan's strategy, checked against its cursor.
async fn stored_watermark(
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

/// Runs a pipeline to the end. Errors before the run starts (bad config,
/// unreachable database, schema conflicts, a pipeline already running) are
/// returned as `Err`; a run that starts and then fails or is cancelled
/// returns its summary with `error` set.
pub async fn run_pipeline(
    opts: &RunOptions,
    progress: Arc<RunProgress>,
) -> Result<RunOutcome, EngineError> {
    let started = Instant::now();
    let (pipeline, plan) = load(opts).await?;
    if !opts.force {
        refuse_disabled(&pipeline, &plan, opts.strategy.is_some())?;
    }
    let fingerprint = SyncFingerprint::of(&pipeline, &plan);
    let state: Arc<dyn StateBackend> = Arc::new(SqliteStateStore::open(&opts.state_dir).await?);
    // Before any database is touched: a second process must neither resume
    // this one's run nor race it creating tables.
    let locks: Box<dyn Lock> = Box::new(FileLock::new(&opts.state_dir));
    let mut lock = locks.acquire(&pipeline.name, opts.wait).await?;

    let mut source = open_source(&pipeline.source, &pipeline.columns).await?;
    source.check().await?;
    let mut sink = open_sink(&pipeline.destination, &pipeline.dest_columns()).await?;
    lock_destination(sink.as_mut(), &pipeline, lock.as_ref(), opts.wait).await?;
    sink.prepare().await?;

    let watermark = stored_watermark(state.as_ref(), &pipeline.name, &plan).await?;
    if watermark.is_some() {
        let binding = state
            .watermark_binding(&pipeline.name, &plan.strategy)
            .await?;
        check_watermark(
            binding.as_ref(),
            sink.as_ref(),
            &pipeline,
            &plan,
            &fingerprint,
        )?;
    }
    let Resume {
        run_id,
        committed,
        starting_over,
    } = choose_run(
        state.as_ref(),
        sink.as_mut(),
        &pipeline,
        &plan,
        &fingerprint,
    )
    .await?;
    if let Some(why) = &starting_over {
        tracing::warn!("{why}");
        eprintln!("warning: {why}");
    }
    lock.set_run_id(&run_id).await?;
    let run = RunIdentity {
        pipeline: pipeline.name.clone(),
        strategy: plan.strategy.clone(),
        run_id: run_id.clone(),
        fingerprint: fingerprint.run.clone(),
    };
    let destination_identity = sink.table_identity();
    let started_empty = sink.started_empty();
    let RunPartitions {
        partitions,
        next_watermark,
        warning,
    } = run_partitions(&plan, source.as_mut(), watermark).await?;
    if let Some(w) = &warning {
        tracing::warn!("{w}");
        eprintln!("warning: {w}");
    }
    // The plan as it runs against this destination: what `synchub plan`
    // shows, from the same probe.
    let plan = plan.for_destination(
        &pipeline,
        DestinationProbe {
            empty: started_empty,
            from_watermark: watermark.is_some(),
        },
    );
    let compared = plan.operators.iter().find_map(|op| match op {
        OperatorSpec::ChangeDetection {
            whole_partitions: true,
            ..
        } => {
            let mut whole_rows = pipeline.clone();
            for c in &mut whole_rows.columns {
                c.hash_column = true;
            }
            Some(whole_rows)
        }
        OperatorSpec::ChangeDetection { .. } => Some(pipeline.clone()),
        _ => None,
    });

    let total = partitions.len() as u64;
    let todo: Vec<Partition> = partitions
        .into_iter()
        .filter(|p| !committed.contains(&p.id))
        .collect();
    let skipped = total - todo.len() as u64;

    // Every lane's connections, opened before the run is marked started so
    // a connection error leaves no run behind.
    let lanes = open_lanes(
        &pipeline,
        compared.as_ref(),
        source,
        sink,
        plan.lanes.min(todo.len()).max(1),
    )
    .await?;

    state
        .start_run(&run_id, &pipeline.name, &plan.strategy)
        .await?;
    let recorder = crate::records::RunRecorder::start(&opts.state_dir, &pipeline.name, &run_id); // run log + metrics files
    state.set_partitions_total(&run_id, total).await?; // for `synchub state show` while the run goes
    recorder.planned(&plan.strategy, total, skipped); // run log
    progress
        .partitions_total
        .store(total, std::sync::atomic::Ordering::Relaxed);
    progress
        .partitions_skipped
        .store(skipped, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        pipeline = %pipeline.name,
        strategy = %plan.strategy,
        run_id = %run_id,
        partitions = total,
        skipped,
        lanes = lanes.len(),
        "starting run"
    );

    let queue = PartitionQueue::new(todo);
    let lane_count = lanes.len() as u64;
    let several = lane_count > 1;
    let chains: Vec<Vec<Box<dyn Operator>>> = lanes
        .into_iter()
        .enumerate()
        .map(|(lane, connections)| {
            // One partition written while the next is read or compared.
            let slots = several.then(|| LaneSlots::new(2));
            let partition_source = match &slots {
                Some(slots) => PartitionSource::lane(queue.clone(), slots.clone()),
                None => PartitionSource::new(queue.clone()),
            };
            let commits = LaneCommits::new(lane, slots, state.clone(), &run_id, recorder.clone());
            lane_operators(
                &pipeline,
                &plan,
                connections,
                partition_source,
                commits,
                LaneContext {
                    run: &run,
                    progress: &progress,
                },
            )
        })
        .collect();

    // Cancelling drops the chains: their tasks are aborted, an open
    // partition's transaction rolls back (its connection closes), and the
    // next run resumes from the checkpoints.
    let result = tokio::select! {
        r = run_lanes(chains, plan.channel_rows, &queue) => r,
        reason = cancelled(&opts.cancel) => Err(EngineError::Cancelled(reason)),
    };
    let get = |c: &std::sync::atomic::AtomicU64| RunProgress::get(c);
    let (status, operators, error) = match result {
        Ok(stats) => (RunStatus::Completed, stats, None),
        Err(e @ EngineError::Cancelled(_)) => (RunStatus::Cancelled, Vec::new(), Some(e)),
        Err(e) => (RunStatus::Failed, Vec::new(), Some(e)),
    };
    let summary = RunSummary {
        pipeline: pipeline.name.clone(),
        strategy: plan.strategy.clone(),
        run_id: run_id.clone(),
        status,
        rows_read: get(&progress.rows_read),
        rows_inserted: get(&progress.rows_inserted),
        rows_updated: get(&progress.rows_updated),
        rows_deleted: get(&progress.rows_deleted),
        rows_unchanged: get(&progress.rows_unchanged),
        partitions_total: total,
        partitions_done: get(&progress.partitions_done),
        partitions_skipped: skipped,
        lanes: lane_count,
        duration_seconds: started.elapsed().as_secs_f64(),
        dag: plan.operators.iter().map(|o| o.to_string()).collect(),
        operators,
    };
    // The watermark moves only once every partition of the window is in.
    if error.is_none() {
        let binding = WatermarkBinding {
            rows_fingerprint: fingerprint.rows.clone(),
            dest_identity: destination_identity,
            dest_nonempty: !started_empty || summary.rows_inserted > 0,
            run_id: run_id.clone(),
        };
        if let Some(w) = next_watermark {
            state
                .set_watermark(
                    &pipeline.name,
                    &plan.strategy,
                    w.kind(),
                    w.0.as_i64(),
                    Some(&binding),
                )
                .await?;
        }
        if plan.kind == planner::StrategyKind::Full {
            state.rebind_watermarks(&pipeline.name, &binding).await?;
        }
    }
    state
        .finish_run(
            &run_id,
            status,
            error.as_ref().map(EngineError::message).as_deref(),
            &serde_json::to_value(&summary).unwrap_or_default(),
        )
        .await?;
    recorder.finish(&summary, error.as_ref()); // run log + metrics files
    tracing::info!(run_id = %run_id, %status, rows = summary.rows_read, "run finished");
    Ok(RunOutcome { summary, error })
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
            stored_hash: match c.stored_hash {
                planner::model::StoredHash::No => planner::model::StoredHash::No,
                _ => planner::model::StoredHash::Read,
            },
            ..c.clone()
        })
        .collect();
    Ok(open_source(&table, &columns).await?)
}

/// The two extra connections change detection compares with: the source
/// and the destination, each read through a source connector.
/// The connections of `wanted` lanes: the first with `source` and `sink`,
/// the others with their own (fewer when the destination takes one writer).
/// `compared`: the pipeline whose checksums change detection compares.
async fn open_lanes(
    pipeline: &Pipeline,
    compared: Option<&Pipeline>,
    source: Box<dyn connectors::Source>,
    mut sink: Box<dyn connectors::Sink>,
    wanted: usize,
) -> Result<Vec<LaneConnections>, EngineError> {
    let mut sinks = Vec::with_capacity(wanted);
    let single_writer = sink.capabilities().single_writer;
    if single_writer && wanted > 1 {
        tracing::info!(
            "the destination takes one writer at a time: partitions are written one after another"
        );
    }
    while !single_writer && sinks.len() + 1 < wanted {
        match sink.another_writer().await? {
            Some(writer) => sinks.push(writer),
            None => {
                tracing::info!(
                    "the destination takes one writer at a time: partitions are written one after another"
                );
                break;
            }
        }
    }
    sinks.insert(0, sink);
    let mut lanes = Vec::with_capacity(sinks.len());
    let mut first_source = Some(source);
    for sink in sinks {
        let source = match first_source.take() {
            Some(source) => source,
            None => {
                let mut source = open_source(&pipeline.source, &pipeline.columns).await?;
                source.check().await?;
                source
            }
        };
        lanes.push(LaneConnections {
            source,
            sink,
            comparison: match compared {
                Some(p) => Some(comparison_sources(p).await?),
                None => None,
            },
        });
    }
    Ok(lanes)
}

/// The connections of one lane.
struct LaneConnections {
    source: Box<dyn connectors::Source>,
    sink: Box<dyn connectors::Sink>,
    /// Source and destination read for checksums (hash, full over a
    /// populated table).
    comparison: Option<(Box<dyn connectors::Source>, Box<dyn connectors::Source>)>,
}

/// What every lane of a run shares.
struct LaneContext<'a> {
    run: &'a RunIdentity,
    progress: &'a Arc<RunProgress>,
}

/// The operators of one lane, in the plan's order.
fn lane_operators(
    pipeline: &Pipeline,
    plan: &Plan,
    connections: LaneConnections,
    partition_source: PartitionSource,
    commits: LaneCommits,
    ctx: LaneContext<'_>,
) -> Vec<Box<dyn Operator>> {
    let LaneConnections {
        source,
        sink,
        mut comparison,
    } = connections;
    let mut ops: Vec<Box<dyn Operator>> = Vec::new();
    let mut source = Some(source);
    let mut sink = Some(sink);
    let mut commits = Some(commits);
    let mut partition_source = Some(partition_source);
    for spec in &plan.operators {
        ops.push(match spec {
            OperatorSpec::PartitionSource => Box::new(
                partition_source
                    .take()
                    .expect("one partition source per plan"),
            ),
            OperatorSpec::ChangeDetection {
                leaf_rows,
                delete_missing,
                secondary,
                whole_partitions,
            } => {
                let (hashing, destination) = comparison
                    .take()
                    .expect("plans with change detection open their comparison sources");
                let detection = ChangeDetection::new(
                    hashing,
                    destination,
                    key_schema(pipeline),
                    *leaf_rows,
                    *delete_missing,
                    plan_page_rows(plan),
                )
                .with_secondary(secondary.clone());
                Box::new(if *whole_partitions {
                    detection.partitions_only()
                } else {
                    detection
                })
            }
            OperatorSpec::Fetch {
                page_rows,
                only_changes,
            } => Box::new(Fetch::new(
                source.take().expect("one fetch per plan"),
                *page_rows,
                ctx.progress.clone(),
                if *only_changes {
                    FetchMode::Changes {
                        key_columns: pipeline
                            .columns
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| c.unique)
                            .map(|(i, _)| i)
                            .collect(),
                    }
                } else {
                    FetchMode::Partitions
                },
            )),
            OperatorSpec::Batcher { target_rows } => Box::new(Batcher::new(*target_rows)),
            OperatorSpec::Populate { rows_are_changes } => {
                let sink = sink.take().expect("one populate per plan");
                let mode = if *rows_are_changes {
                    WriteMode::Changes
                } else {
                    WriteMode::Merge
                };
                Box::new(
                    commits
                        .take()
                        .expect("one populate per plan")
                        .wrap(|on_commit| {
                            Populate::new(
                                sink,
                                mode,
                                ctx.run.clone(),
                                ctx.progress.clone(),
                                on_commit,
                            )
                        }),
                )
            }
        });
    }
    ops
}

/// Runs the lanes side by side. The first error wins; it closes the queue,
/// so the other lanes finish the partitions they hold and take no more.
/// Operator figures are summed over the lanes.
async fn run_lanes(
    chains: Vec<Vec<Box<dyn Operator>>>,
    channel_rows: usize,
    queue: &Arc<PartitionQueue>,
) -> Result<Vec<OperatorStats>, EngineError> {
    let mut lanes = tokio::task::JoinSet::new();
    for ops in chains {
        let queue = queue.clone();
        lanes.spawn(async move {
            let result = run_chain(ops, channel_rows).await;
            if result.is_err() {
                queue.close();
            }
            result
        });
    }
    let mut first_error = None;
    let mut totals: Vec<OperatorStats> = Vec::new();
    while let Some(joined) = lanes.join_next().await {
        match joined {
            Ok(Ok(stats)) if totals.is_empty() => totals = stats,
            Ok(Ok(stats)) => {
                for (total, lane) in totals.iter_mut().zip(stats) {
                    total.add(&lane);
                }
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                queue.close();
                first_error.get_or_insert(EngineError::Panicked {
                    operator: "a lane".to_string(),
                    message: e.to_string(),
                });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(totals),
    }
}

async fn comparison_sources(
    pipeline: &Pipeline,
) -> Result<(Box<dyn connectors::Source>, Box<dyn connectors::Source>), EngineError> {
    let mut source = open_source(&pipeline.source, &pipeline.columns).await?;
    source.check().await?;
    let mut destination = destination_as_source(pipeline).await?;
    destination.check().await?;
    Ok((source, destination))
}

/// Arrow schema of the unique key columns, in mapping order.
fn key_schema(pipeline: &Pipeline) -> arrow::datatypes::SchemaRef {
    let keys: Vec<_> = pipeline
        .columns
        .iter()
        .filter(|c| c.unique)
        .map(|c| c.spec.clone())
        .collect();
    planner::types::arrow_schema(&keys)
}

fn plan_page_rows(plan: &Plan) -> usize {
    plan.operators
        .iter()
        .find_map(|o| match o {
            OperatorSpec::Fetch { page_rows, .. } => Some(*page_rows),
            _ => None,
        })
        .unwrap_or(planner::model::DEFAULT_PAGE_SIZE)
}

#[cfg(test)]
mod dead_holder_tests {
    use super::is_dead_local_holder;

    #[test]
    fn a_holder_is_dead_only_when_its_process_of_this_host_is_gone() {
        let me = std::process::id();
        let alive =
            format!("synchub pid {me} on box, connected from 127.0.0.1 since 2026-12-07 UTC");
        assert!(!is_dead_local_holder(&alive, "box"));
        // No process has pid 4,000,000,000 (above Linux's pid_max).
        let gone = "synchub pid 4000000000 on box, connected from 127.0.0.1 since 2026-12-07 UTC";
        assert_eq!(is_dead_local_holder(gone, "box"), cfg!(target_os = "linux"));
        assert!(!is_dead_local_holder(gone, "other-box"));
        assert!(!is_dead_local_holder(
            "a session that has just let go",
            "box"
        ));
    }
}
