//! The run coordinator: everything that happens once per run. It loads and
//! plans the pipeline, takes the locks, picks the run (new or resumed) and
//! its partitions, hands them as tasks to partition executors through a
//! work queue, and once they are done moves the watermark and records how
//! the run ended.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use connectors::{open_sink, open_source, RunIdentity, Sink, Source};
use operators::RunProgress;
use planner::partition::Partition;
use planner::plan::DestinationProbe;
use planner::{Pipeline, Plan, StrategyKind, SyncFingerprint};

use crate::commits::CommitRecords;
use crate::destination_lock::lock_destination;
use crate::error::EngineError;
use crate::executor::{run_executors, ExecutorConnections, ExecutorShared, PartitionExecutor};
use crate::lock::{
    table_name, FileLock, Lock, LockGuard, RedisLockGuard, RedisTableLock, TableLockMode,
};
use crate::partitions::{run_partitions, RunPartitions, Watermark};
use crate::records::RunRecorder;
use crate::resume::{check_watermark, choose_run, Resume};
use crate::run::{load, refuse_disabled, stored_watermark, RunOptions, RunOutcome, RunSummary};
use crate::run_context::RunContext;
use crate::state::{RunStatus, SqliteStateStore, StateBackend, WatermarkBinding};
use crate::task::{PartitionOutcome, PartitionTask, RunWork};
use crate::work_queue::{InMemoryWorkQueue, WorkQueue};

/// Tasks queued ahead of the executors, per executor.
const QUEUED_PER_EXECUTOR: usize = 4;

/// A run picked and planned against its destination, not started yet.
pub(crate) struct PlannedRun {
    pub(crate) pipeline: Pipeline,
    /// As it runs against this destination (`Plan::for_destination`).
    pub(crate) plan: Plan,
    pub(crate) fingerprint: SyncFingerprint,
    pub(crate) state: Arc<dyn StateBackend>,
    /// The state directory's lock, held until the run ends.
    pub(crate) _lock: Box<dyn LockGuard>,
    /// The lock shared by every host's coordinators, when there is one.
    pub(crate) _cluster_lock: Option<Box<dyn LockGuard>>,
    /// The destination table's write lock in Redis, beside the cluster
    /// lock.
    pub(crate) _table_lock: Option<RedisLockGuard>,
    pub(crate) run_id: String,
    /// Every partition of the run, and those still to do.
    pub(crate) total: u64,
    pub(crate) todo: Vec<Partition>,
    /// Partitions committed by an earlier attempt at the run.
    pub(crate) skipped: u64,
    pub(crate) next_watermark: Option<Watermark>,
    pub(crate) destination_identity: String,
    pub(crate) started_empty: bool,
    /// A delta with `track_moves` from no watermark: its windows cover
    /// every row, so once it completes every row's group is known.
    pub(crate) learns_row_groups: bool,
}

impl PlannedRun {
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    pub(crate) fn work(&self) -> RunWork {
        let mut work = RunWork::of(
            &self.pipeline,
            &self.plan,
            RunIdentity {
                pipeline: self.pipeline.name.clone(),
                strategy: self.plan.strategy.clone(),
                run_id: self.run_id.clone(),
                fingerprint: self.fingerprint.run.clone(),
            },
        );
        work.destination_started_empty = self.started_empty;
        work
    }
}

/// The coordinator's connections: the source it read the bounds from, and
/// the destination it prepared, whose session holds the destination's lock.
pub(crate) struct Connections {
    pub(crate) source: Box<dyn Source>,
    pub(crate) sink: Box<dyn Sink>,
}

/// A lock waited for (`--wait`), unless the run is cancelled (a signal)
/// meanwhile: a waiting run has nothing to roll back.
async fn until_cancelled<T>(
    opts: &RunOptions,
    wait: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    tokio::select! {
        reason = opts.cancel.cancelled() => Err(EngineError::Cancelled(reason)),
        locked = wait => locked,
    }
}

/// Loads, locks, connects and picks the run and the partitions it has
/// left, creating nothing in the state store yet.
pub(crate) async fn plan_run(opts: &RunOptions) -> Result<(PlannedRun, Connections), EngineError> {
    let (pipeline, plan) = load(opts).await?;
    if !opts.force {
        refuse_disabled(&pipeline, &plan, opts.strategy.is_some())?;
    }
    let fingerprint = SyncFingerprint::of(&pipeline, &plan);
    // The connections are opened while the state store is: a connection's
    // start-up (a server process forked per session, TLS) is a fixed cost
    // every run pays, and so is the state store's (its first opener reads
    // the write-ahead log back). Opening writes nothing (but an absent
    // SQLite destination's empty file); the locks are taken before anything
    // is planned, resumed or created. The state store's error is reported
    // first, then the source's, as when they were opened in turn.
    let dest_columns = pipeline.dest_columns();
    let (state_and_lock, source, sink) = tokio::join!(
        async {
            let state = SqliteStateStore::open(&opts.state_dir).await?;
            // A second process must neither resume this one's run nor race
            // it creating tables.
            let cluster_lock = match &opts.cluster_lock {
                Some(locks) => {
                    Some(until_cancelled(opts, locks.acquire(&pipeline.name, opts.wait)).await?)
                }
                None => None,
            };
            // The destination is written by this run till it ends: no DDL
            // on it from another run meanwhile.
            let table_lock = match &opts.cluster_lock {
                Some(locks) => {
                    let table = table_name(&pipeline.destination);
                    let writes = until_cancelled(
                        opts,
                        RedisTableLock::new(locks, TableLockMode::Write).lock(&table, opts.wait),
                    )
                    .await?;
                    Some((locks, table, writes))
                }
                None => None,
            };
            let locks: Box<dyn Lock> = Box::new(FileLock::new(&opts.state_dir));
            let lock = until_cancelled(opts, locks.acquire(&pipeline.name, opts.wait)).await?;
            Ok::<_, EngineError>((state, cluster_lock, table_lock, lock))
        },
        async {
            let mut source = open_source(&pipeline.source, pipeline.read_columns()).await?;
            source.check().await?;
            Ok::<_, EngineError>(source)
        },
        open_sink(&pipeline.destination, &dest_columns)
    );
    let (state, mut cluster_lock, table_lock, mut lock) = state_and_lock?;
    let state: Arc<dyn StateBackend> = Arc::new(state);
    let (mut source, mut sink) = (source?, sink?);
    refuse_missing_capability(&pipeline, &plan, sink.as_ref())?;
    until_cancelled(
        opts,
        lock_destination(sink.as_mut(), &pipeline, lock.as_ref(), opts.wait),
    )
    .await?;
    let watermark = stored_watermark(state.as_ref(), &pipeline.name, &plan).await?;
    let track_moves = plan.operators.contains(&planner::OperatorSpec::TrackMoves);
    if track_moves && watermark.is_some() && !state.row_groups_learned(&pipeline.name).await? {
        return Err(EngineError::StaleWatermark(format!(
            "strategy {}: track_moves needs the group of every source row of pipeline {} remembered, and the state store has not learned them (track_moves was turned on after earlier runs, or the state was reset): run the pipeline's full or hash strategy once, which learns them",
            plan.strategy, pipeline.name
        )));
    }
    // The source's partitions need nothing of the destination unless the
    // run deletes what the source lacks: then they are found while the
    // destination is prepared, each connection's round trips overlapping
    // the other's.
    // Preparing creates or changes the table: alone, beside no other
    // run's writes (this run's own write lock stays).
    let ddl = match &table_lock {
        Some((locks, table, writes)) => Some(
            until_cancelled(
                opts,
                RedisTableLock::ddl_beside(locks, writes).lock(table, opts.wait),
            )
            .await?,
        ),
        None => None,
    };
    let (prepared, planned_early) = tokio::join!(sink.prepare(), async {
        match plan.deletes_missing() {
            true => None,
            false => Some(run_partitions(&plan, source.as_mut(), watermark, None).await),
        }
    });
    drop(ddl);
    prepared?;
    let planned_early = planned_early.transpose()?;
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
    if let Some(cluster_lock) = &mut cluster_lock {
        cluster_lock.set_run_id(&run_id).await?;
    }
    let table_lock = match table_lock {
        Some((_, _, mut writes)) => {
            writes.set_run_id(&run_id).await?;
            Some(writes)
        }
        None => None,
    };
    let destination_identity = sink.table_identity();
    let started_empty = sink.started_empty();
    let RunPartitions {
        partitions,
        next_watermark,
        warning,
        ..
    } = match planned_early {
        Some(planned) => planned,
        None => {
            run_partitions(
                &plan,
                source.as_mut(),
                watermark,
                (!started_empty).then_some(&pipeline),
            )
            .await?
        }
    };
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
    let total = partitions.len() as u64;
    let todo: Vec<Partition> = partitions
        .into_iter()
        .filter(|p| !committed.contains(&p.id))
        .collect();
    let run = PlannedRun {
        pipeline,
        plan,
        fingerprint,
        state,
        _lock: lock,
        _cluster_lock: cluster_lock,
        _table_lock: table_lock,
        run_id,
        total,
        skipped: total - todo.len() as u64,
        todo,
        next_watermark,
        destination_identity,
        started_empty,
        learns_row_groups: track_moves && watermark.is_none(),
    };
    Ok((run, Connections { source, sink }))
}

/// Marks the run started in the state store and the run log.
pub(crate) async fn start(
    run: &PlannedRun,
    state_dir: &Path,
    progress: &RunProgress,
) -> Result<RunRecorder, EngineError> {
    let (pipeline, strategy, run_id) = (&run.pipeline.name, &run.plan.strategy, &run.run_id);
    run.state.start_run(run_id, pipeline, strategy).await?;
    let recorder = RunRecorder::start(state_dir, pipeline, run_id); // run log + metrics files
    run.state.set_partitions_total(run_id, run.total).await?; // for `synchub state show` while the run goes
    recorder.planned(strategy, run.total, run.skipped()); // run log
    progress
        .partitions_total
        .store(run.total, Ordering::Relaxed);
    progress
        .partitions_skipped
        .store(run.skipped(), Ordering::Relaxed);
    Ok(recorder)
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
    let started_us = operators::progress::epoch_micros();
    let (mut run, Connections { source, sink }) = plan_run(opts).await?;
    let work = Arc::new(run.work());
    let skipped = run.skipped();

    // Every executor's connections, opened before the run is marked started
    // so a connection error leaves no run behind. The first executor has
    // the coordinator's: its sink holds the destination's lock.
    let lanes = ExecutorConnections::open_lanes(
        &work,
        source,
        sink,
        run.plan.lanes.min(run.todo.len()).max(1),
    )
    .await?;
    let recorder = start(&run, &opts.state_dir, &progress).await?;
    let todo = std::mem::take(&mut run.todo);
    tracing::info!(
        pipeline = %run.pipeline.name,
        strategy = %run.plan.strategy,
        run_id = %run.run_id,
        partitions = run.total,
        skipped,
        lanes = lanes.len(),
        "starting run"
    );

    let lane_count = lanes.len();
    let queue: Arc<dyn WorkQueue> =
        Arc::new(InMemoryWorkQueue::new(lane_count * QUEUED_PER_EXECUTOR));
    let shared = Arc::new(ExecutorShared {
        work: work.clone(),
        queue: queue.clone(),
        run: RunContext {
            run_id: run.run_id.clone(),
            cancel: opts.cancel.clone(),
            progress: progress.clone(),
        },
        records: CommitRecords {
            run_id: run.run_id.clone(),
            state: Some(run.state.clone()),
            recorder: recorder.clone(),
            queue: queue.clone(),
            moves: run
                .plan
                .operators
                .contains(&planner::OperatorSpec::TrackMoves)
                .then(|| {
                    Arc::new(crate::moves::StateMovesMemory::new(
                        run.state.clone(),
                        &run.pipeline.name,
                    )) as Arc<dyn operators::track_moves::MovesMemory>
                }),
        },
    });
    let executors: Vec<PartitionExecutor> = lanes
        .into_iter()
        .enumerate()
        .map(|(lane, connections)| PartitionExecutor::new(lane, connections, lane_count > 1))
        .collect();
    let task_run = Arc::new(work.to_task_run());
    let feed = async {
        for partition in todo {
            let task = PartitionTask {
                run: task_run.clone(),
                partition,
            };
            queue.push(task).await?;
        }
        queue.end_of_tasks();
        Ok::<(), EngineError>(())
    };

    // Cancelling drops the executors: their tasks are aborted, an open
    // partition's transaction rolls back (its connection closes), and the
    // next run resumes from the checkpoints.
    let result = tokio::select! {
        (fed, ran) = async { tokio::join!(feed, run_executors(executors, shared.clone())) } => {
            fed.and(ran)
        },
        reason = opts.cancel.cancelled() => Err(EngineError::Cancelled(reason)),
    };
    queue.close();
    while let Some(report) = queue.next_report().await? {
        if let PartitionOutcome::Failed { error } = &report.outcome {
            tracing::debug!(partition = %report.partition_id, %error, "partition not committed");
        }
    }
    conclude(
        &run,
        &recorder,
        &progress,
        (started, started_us),
        lane_count as u64,
        result,
    )
    .await
}

/// Ends a run that started: sums it up from `progress`, moves the
/// watermark when it completed, records how it ended in the state store
/// and the run log. `lanes`: executors (or workers) that wrote it.
pub(crate) async fn conclude(
    run: &PlannedRun,
    recorder: &RunRecorder,
    progress: &RunProgress,
    (started, started_us): (Instant, u64),
    lanes: u64,
    result: Result<Vec<crate::runtime::OperatorStats>, EngineError>,
) -> Result<RunOutcome, EngineError> {
    let get = |c: &std::sync::atomic::AtomicU64| RunProgress::get(c);
    // The end of the run's time is taken here, with its duration: the
    // process's start and what follows (the state store's last write, the
    // run log, exit) are what its wall time adds.
    let (setup_seconds, wrapup_seconds) = fixed_cost(progress, started_us);
    let (status, operators, error) = match result {
        Ok(stats) => (RunStatus::Completed, stats, None),
        Err(e @ EngineError::Cancelled(_)) => (RunStatus::Cancelled, Vec::new(), Some(e)),
        Err(e) => (RunStatus::Failed, Vec::new(), Some(e)),
    };
    let summary = RunSummary {
        pipeline: run.pipeline.name.clone(),
        strategy: run.plan.strategy.clone(),
        run_id: run.run_id.clone(),
        status,
        rows_read: get(&progress.rows_read),
        rows_inserted: get(&progress.rows_inserted),
        rows_updated: get(&progress.rows_updated),
        rows_deleted: get(&progress.rows_deleted),
        rows_unchanged: get(&progress.rows_unchanged),
        groups_recomputed: run.plan.aggregate.is_some().then(|| {
            get(&progress.rows_inserted)
                + get(&progress.rows_updated)
                + get(&progress.rows_unchanged)
        }),
        groups_deleted: run
            .plan
            .aggregate
            .is_some()
            .then(|| get(&progress.rows_deleted)),
        partitions_total: run.total,
        partitions_done: get(&progress.partitions_done),
        partitions_skipped: run.skipped(),
        lanes,
        duration_seconds: started.elapsed().as_secs_f64(),
        setup_seconds,
        wrapup_seconds,
        dag: run.plan.operators.iter().map(|o| o.to_string()).collect(),
        operators,
    };
    finish(run, &summary, error.as_ref()).await?;
    recorder.finish(&summary, error.as_ref()); // run log + metrics files
    crate::telemetry::run_finished(&summary);
    tracing::info!(run_id = %run.run_id, %status, rows = summary.rows_read, "run finished");
    Ok(RunOutcome { summary, error })
}

/// Seconds from `started_us` to the first partition taken, and from the
/// last commit to now (the whole run and nothing when there was none).
pub(crate) fn fixed_cost(progress: &RunProgress, started_us: u64) -> (f64, f64) {
    let now = operators::progress::epoch_micros();
    let first = RunProgress::get(&progress.first_partition_taken_us);
    let last = RunProgress::get(&progress.last_commit_us);
    let seconds = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    if first == 0 {
        return (seconds(started_us, now), 0.0);
    }
    let wrapup = if last == 0 { 0.0 } else { seconds(last, now) };
    (seconds(started_us, first), wrapup)
}

/// Moves the watermark (only once every partition of the window is in)
/// and records how the run ended.
pub(crate) async fn finish(
    run: &PlannedRun,
    summary: &RunSummary,
    error: Option<&EngineError>,
) -> Result<(), EngineError> {
    let (state, pipeline, strategy) = (&run.state, &run.pipeline.name, &run.plan.strategy);
    if error.is_none() {
        let binding = WatermarkBinding {
            rows_fingerprint: run.fingerprint.rows.clone(),
            dest_identity: run.destination_identity.clone(),
            dest_nonempty: !run.started_empty || summary.rows_inserted > 0,
            run_id: run.run_id.clone(),
        };
        if let Some(w) = run.next_watermark {
            state
                .set_watermark(pipeline, strategy, w.kind(), w.0.as_i64(), Some(&binding))
                .await?;
        }
        if run.plan.kind == planner::StrategyKind::Full {
            state.rebind_watermarks(pipeline, &binding).await?;
        }
        if run.learns_row_groups {
            state.set_row_groups_learned(pipeline).await?;
        }
        crate::moves::learn_after_run(&run.pipeline, run.plan.kind, state).await?;
    }
    state
        .finish_run(
            &run.run_id,
            summary.status,
            error.map(EngineError::message).as_deref(),
            &serde_json::to_value(summary).unwrap_or_default(),
        )
        .await
}

/// The tasks a run wrote out instead of executing them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmittedTasks {
    pub pipeline: String,
    pub strategy: String,
    pub run_id: String,
    pub partitions_total: u64,
    pub partitions_skipped: u64,
    /// One file per partition to do, in the run's order.
    pub files: Vec<PathBuf>,
}

/// Plans and starts a run as [`run_pipeline`] does, then writes each
/// partition still to do as a task file in `dir` (`task-00001.json`, …)
/// instead of executing it. The run stays open: workers execute the tasks
/// (`synchub worker run-task`), and a later `synchub run` resumes it,
/// skipping the partitions they committed, and finishes it.
pub async fn emit_tasks(opts: &RunOptions, dir: &Path) -> Result<EmittedTasks, EngineError> {
    // The destination's lock is held until the run is marked started.
    let (run, _connections) = plan_run(opts).await?;
    refuse_aggregate_tasks(&run.pipeline)?;
    let task_run = Arc::new(run.work().to_task_run());
    // Every task is written before the run is marked started: a secret in
    // clear or an unwritable folder leaves no run behind.
    let io = |e: std::io::Error, path: &Path| {
        EngineError::Task(format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    let mut files = Vec::with_capacity(run.todo.len());
    for (i, partition) in run.todo.iter().enumerate() {
        let task = PartitionTask {
            run: task_run.clone(),
            partition: partition.clone(),
        };
        let path = dir.join(format!("task-{:05}.json", i + 1));
        std::fs::write(&path, task.to_json()?).map_err(|e| io(e, &path))?;
        files.push(path);
    }
    let recorder = start(&run, &opts.state_dir, &RunProgress::default()).await?;
    recorder.log(
        "info",
        "tasks written for workers",
        serde_json::json!({ "tasks": files.len(), "dir": dir.display().to_string() }),
    );
    Ok(EmittedTasks {
        pipeline: run.pipeline.name.clone(),
        strategy: run.plan.strategy.clone(),
        run_id: run.run_id.clone(),
        partitions_total: run.total,
        partitions_skipped: run.skipped(),
        files,
    })
}

/// A task carries a pipeline's tables and columns, not yet an aggregate's
/// group-by: a worker elsewhere would read rows where groups are meant.
pub(crate) fn refuse_aggregate_tasks(pipeline: &Pipeline) -> Result<(), EngineError> {
    if pipeline.aggregate.is_some() {
        return Err(EngineError::Unsupported(format!(
            "pipeline {} is an aggregate sync, which runs in one process for now (its tasks do not carry the group-by yet); run it with `synchub run` without --queue",
            pipeline.name
        )));
    }
    Ok(())
}

/// A strategy that needs what the destination cannot do is refused before
/// anything is written: a hash run deletes the rows gone from the source.
fn refuse_missing_capability(
    pipeline: &Pipeline,
    plan: &Plan,
    sink: &dyn Sink,
) -> Result<(), EngineError> {
    if plan.kind == StrategyKind::Hash && !sink.capabilities().delete {
        return Err(EngineError::Unsupported(format!(
            "strategy \"{}\" is a hash sync, which deletes the rows gone from the source, \
             and destination datastore \"{}\" cannot delete rows; use a full or delta strategy",
            plan.strategy,
            pipeline.destination.datastore.name()
        )));
    }
    if plan.replaces_destination() && !sink.can_replace() {
        return Err(EngineError::Unsupported(format!(
            "strategy \"{}\" is a full aggregate run, which replaces the destination's groups (deleting those with no source row left), \
             and destination datastore \"{}\" cannot replace a table's rows; run the delta strategy",
            plan.strategy,
            pipeline.destination.datastore.name()
        )));
    }
    if plan.deletes_missing() && !sink.capabilities().delete {
        return Err(EngineError::Unsupported(format!(
            "strategy \"{}\" has delete_missing: true, and destination datastore \"{}\" cannot \
             delete rows; remove delete_missing to keep the rows gone from the source",
            plan.strategy,
            pipeline.destination.datastore.name()
        )));
    }
    Ok(())
}
