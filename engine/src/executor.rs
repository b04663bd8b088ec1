//! The partition executor: takes a run's partition tasks from its work
//! queue, runs each through the operator chain the plan names, commits it
//! with its checkpoint in the destination, and reports it.
//!
//! An executor keeps its connections and its chain for every task of the
//! run it takes: the chain's partition source pulls the next task while the
//! previous one is written, as a lane always did. A run's lanes
//! (`max_concurrent_partitions`) are that many executors on one queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use connectors::{open_sink, open_source, Sink, Source, WriteMode};
use operators::batcher::Batcher;
use operators::change_detection::ChangeDetection;
use operators::fetch::{Fetch, FetchMode};
use operators::group_checksums::GroupChecksums;
use operators::group_deletes::GroupDeletes;
use operators::partition_source::{LaneSlots, PartitionFeed, PartitionSource};
use operators::populate::Populate;
use operators::regroup::Regroup;
use operators::track_moves::{MovesMemory, RowGroupReader, TrackMoves};
use operators::{Operator, OperatorError, RunProgress};
use planner::partition::Partition;
use planner::{OperatorSpec, Pipeline};

use crate::commits::{CommitRecords, LaneCommits};
use crate::error::EngineError;
use crate::run_context::RunContext;
use crate::runtime::{run_chain, OperatorStats};
use crate::task::{PartitionOutcome, PartitionReport, RunWork};
use crate::work_queue::WorkQueue;

/// The connections of one executor.
pub struct ExecutorConnections {
    source: Box<dyn Source>,
    sink: Box<dyn Sink>,
    /// Source and destination read for checksums (hash, full over a
    /// populated table).
    comparison: Option<(Box<dyn Source>, Box<dyn Source>)>,
    /// `track_moves`: the source's rows as their keys and groups are read.
    moves_rows: Option<(Box<dyn Source>, RowGroupReader)>,
}

/// The source as `track_moves` reads it, when the plan has it.
async fn moves_rows(
    work: &RunWork,
) -> Result<Option<(Box<dyn Source>, RowGroupReader)>, EngineError> {
    if !work.operators.contains(&OperatorSpec::TrackMoves) {
        return Ok(None);
    }
    crate::moves::open_row_group_source(&work.pipeline)
        .await
        .map(Some)
}

impl ExecutorConnections {
    /// Everything `work` needs, opened afresh and the destination prepared:
    /// an executor of a worker process, given a task of a run planned
    /// elsewhere.
    pub async fn open(work: &RunWork) -> Result<ExecutorConnections, EngineError> {
        let pipeline = &work.pipeline;
        // Each step's time, for a worker task's start-up cost (debug log).
        let mut lap = std::time::Instant::now();
        let mut laps = [0.0f64; 5];
        let mut mark = |i: usize| {
            laps[i] = lap.elapsed().as_secs_f64() * 1000.0;
            lap = std::time::Instant::now();
        };
        let mut source = open_source(&pipeline.source, pipeline.read_columns()).await?;
        mark(0);
        source.check().await?;
        mark(1);
        let mut sink = open_sink(&pipeline.destination, &pipeline.dest_columns()).await?;
        mark(2);
        sink.prepare().await?;
        sink.set_started_empty(work.destination_started_empty);
        mark(3);
        let comparison = match compared_pipeline(pipeline, &work.operators) {
            Some(p) => Some(comparison_sources(&p).await?),
            None => None,
        };
        let moves_rows = moves_rows(work).await?;
        mark(4);
        tracing::debug!(
            source_open_ms = laps[0],
            source_check_ms = laps[1],
            sink_open_ms = laps[2],
            sink_prepare_ms = laps[3],
            comparison_ms = laps[4],
            "executor connections opened"
        );
        Ok(ExecutorConnections {
            source,
            sink,
            comparison,
            moves_rows,
        })
    }

    /// The rows of `partition`'s checkpoint under `run`, when the
    /// destination holds it: a task taken over from a worker that stopped
    /// may have been committed just before it did.
    pub async fn committed(
        &mut self,
        run: &connectors::RunIdentity,
        partition: &str,
    ) -> Result<Option<u64>, EngineError> {
        Ok(self
            .sink
            .checkpoints(run)
            .await?
            .iter()
            .find(|c| c.partition_id == partition)
            .map(|c| c.rows))
    }

    /// The connections of `wanted` lanes: the first with `source` and
    /// `sink` (the coordinator's, holding the destination's lock), the
    /// others with their own; fewer when the destination takes one writer.
    pub async fn open_lanes(
        work: &RunWork,
        source: Box<dyn Source>,
        mut sink: Box<dyn Sink>,
        wanted: usize,
    ) -> Result<Vec<ExecutorConnections>, EngineError> {
        let pipeline = &work.pipeline;
        let compared = compared_pipeline(pipeline, &work.operators);
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
        // Every lane's other connections at once: each one's start-up is a
        // fixed cost of the run. The first lane reads with the coordinator's
        // source.
        let extra_sources = (1..sinks.len()).map(|_| async {
            let mut source = open_source(&pipeline.source, pipeline.read_columns()).await?;
            source.check().await?;
            Ok::<_, EngineError>(source)
        });
        let comparisons = (0..sinks.len()).map(|_| async {
            match &compared {
                Some(p) => comparison_sources(p).await.map(Some),
                None => Ok(None),
            }
        });
        let all_moves_rows = (0..sinks.len()).map(|_| moves_rows(work));
        let (extra_sources, comparisons, all_moves_rows) = futures_util::future::try_join3(
            futures_util::future::try_join_all(extra_sources),
            futures_util::future::try_join_all(comparisons),
            futures_util::future::try_join_all(all_moves_rows),
        )
        .await?;
        let lanes = std::iter::once(source)
            .chain(extra_sources)
            .zip(sinks)
            .zip(comparisons)
            .zip(all_moves_rows)
            .map(
                |(((source, sink), comparison), moves_rows)| ExecutorConnections {
                    source,
                    sink,
                    comparison,
                    moves_rows,
                },
            )
            .collect();
        Ok(lanes)
    }
}

/// The pipeline whose checksums change detection compares, when the plan
/// has a change detection: every column for a full run over a populated
/// destination (whole partitions), the hash columns otherwise.
fn compared_pipeline(pipeline: &Pipeline, operators: &[OperatorSpec]) -> Option<Pipeline> {
    operators.iter().find_map(|op| match op {
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
        OperatorSpec::ChangeDetection { .. } | OperatorSpec::GroupChecksums { .. } => {
            Some(pipeline.clone())
        }
        _ => None,
    })
}

async fn comparison_sources(
    pipeline: &Pipeline,
) -> Result<(Box<dyn Source>, Box<dyn Source>), EngineError> {
    // Both at once, as the coordinator opens its own (a connection's
    // start-up is a fixed cost of every run).
    // An aggregate's groups are compared with the source's rows: those the
    // group-by reads, hashed.
    let (table, columns) = match &pipeline.aggregate {
        Some(a) => {
            let mut rows = pipeline.source.clone();
            rows.grouped = None;
            (rows, a.row_hash_columns().unwrap_or_default())
        }
        None => (pipeline.source.clone(), pipeline.read_columns().to_vec()),
    };
    let (source, destination) = tokio::join!(
        async {
            let mut source = open_source(&table, &columns).await?;
            source.check().await?;
            Ok::<_, EngineError>(source)
        },
        async {
            let mut destination = crate::run::destination_as_source(pipeline).await?;
            destination.check().await?;
            Ok::<_, EngineError>(destination)
        }
    );
    Ok((source?, destination?))
}

/// What the executors of one run share.
pub struct ExecutorShared {
    pub work: Arc<RunWork>,
    pub queue: Arc<dyn WorkQueue>,
    pub run: RunContext,
    pub records: CommitRecords,
}

/// One executor: its connections, and, as one of several, the partitions
/// it may hold uncommitted.
pub struct PartitionExecutor {
    lane: usize,
    connections: ExecutorConnections,
    slots: Option<LaneSlots>,
}

impl PartitionExecutor {
    /// Executor number `lane`; `several`: other executors share its queue,
    /// so it holds two partitions at most (one written while the next is
    /// read or compared) and leaves the rest to them.
    pub fn new(lane: usize, connections: ExecutorConnections, several: bool) -> PartitionExecutor {
        PartitionExecutor {
            lane,
            connections,
            slots: several.then(|| LaneSlots::new(2)),
        }
    }

    /// Runs the tasks of `shared`'s queue until it is drained or closed, or
    /// the run is cancelled. On failure or cancellation, every task it took
    /// and did not commit is reported failed.
    pub async fn run(self, shared: &ExecutorShared) -> Result<Vec<OperatorStats>, EngineError> {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let committed = Arc::new(Mutex::new(HashSet::new()));
        let feed: Arc<dyn PartitionFeed> = Arc::new(QueueFeed {
            queue: shared.queue.clone(),
            run_id: shared.work.identity.run_id.clone(),
            taken: taken.clone(),
            progress: shared.run.progress.clone(),
        });
        let partition_source = match &self.slots {
            Some(slots) => PartitionSource::lane(feed, slots.clone()),
            None => PartitionSource::new(feed),
        };
        let commits = LaneCommits::new(
            self.lane,
            self.slots.clone(),
            shared.records.clone(),
            committed.clone(),
        );
        let ops = chain(
            &shared.work,
            self.connections,
            partition_source,
            commits,
            &shared.run.progress,
            shared.records.moves.clone(),
        )?;
        // Cancelling drops the chain: its tasks are aborted and an open
        // partition's transaction rolls back as its connection closes.
        let result = tokio::select! {
            r = run_chain(ops, shared.work.channel_rows) => r,
            reason = shared.run.cancel.cancelled() => Err(EngineError::Cancelled(reason)),
        };
        if let Err(e) = &result {
            let taken = std::mem::take(&mut *taken.lock().unwrap_or_else(|e| e.into_inner()));
            let committed = committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for partition_id in taken.into_iter().filter(|id| !committed.contains(id)) {
                shared
                    .queue
                    .report(PartitionReport {
                        run_id: shared.work.identity.run_id.clone(),
                        partition_id,
                        outcome: PartitionOutcome::Failed { error: e.message() },
                    })
                    .await?;
            }
        }
        result
    }
}

/// Runs the executors side by side. The first error wins; it closes the
/// queue, so the others finish the partitions they hold and take no more.
/// Operator figures are summed over the executors.
pub async fn run_executors(
    executors: Vec<PartitionExecutor>,
    shared: Arc<ExecutorShared>,
) -> Result<Vec<OperatorStats>, EngineError> {
    let mut lanes = tokio::task::JoinSet::new();
    for executor in executors {
        let shared = shared.clone();
        lanes.spawn(async move {
            let result = executor.run(&shared).await;
            if result.is_err() {
                shared.queue.close();
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
                shared.queue.close();
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

/// The partitions of the tasks an executor pulls from its run's queue.
struct QueueFeed {
    queue: Arc<dyn WorkQueue>,
    run_id: String,
    /// Ids of the partitions handed out, for reporting those left undone.
    taken: Arc<Mutex<Vec<String>>>,
    progress: Arc<RunProgress>,
}

#[async_trait]
impl PartitionFeed for QueueFeed {
    async fn next_partition(&self) -> operators::operator::Result<Option<Partition>> {
        let task = self
            .queue
            .pull()
            .await
            .map_err(|e| OperatorError::Other(e.message()))?;
        let Some(task) = task else {
            return Ok(None);
        };
        // An executor's chain is built for one run; a task of another
        // would be written under the wrong checkpoint.
        if task.run.identity.run_id != self.run_id {
            return Err(OperatorError::Other(format!(
                "the work queue of run {} handed out a task of run {}",
                self.run_id, task.run.identity.run_id
            )));
        }
        if let Ok(mut taken) = self.taken.lock() {
            taken.push(task.partition.id.clone());
        }
        self.progress.partition_taken();
        Ok(Some(task.partition))
    }
}

/// The operators of one executor, in the plan's order.
fn chain(
    work: &RunWork,
    connections: ExecutorConnections,
    partition_source: PartitionSource,
    commits: LaneCommits,
    progress: &Arc<RunProgress>,
    moves: Option<Arc<dyn MovesMemory>>,
) -> Result<Vec<Box<dyn Operator>>, EngineError> {
    let pipeline = &work.pipeline;
    let ExecutorConnections {
        source,
        sink,
        mut comparison,
        mut moves_rows,
    } = connections;
    let tracks_moves = work.operators.contains(&OperatorSpec::TrackMoves);
    let mut ops: Vec<Box<dyn Operator>> = Vec::new();
    let mut source = Some(source);
    let mut sink = Some(sink);
    let mut commits = Some(commits);
    let mut partition_source = Some(partition_source);
    for spec in &work.operators {
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
                    page_rows(&work.operators),
                )
                .with_secondary(secondary.clone());
                Box::new(if *whole_partitions {
                    detection.partitions_only()
                } else {
                    detection
                })
            }
            OperatorSpec::GroupChecksums {
                leaf_rows,
                secondary,
            } => {
                let (rows, destination) = comparison
                    .take()
                    .expect("plans with group checksums open their comparison sources");
                let date_keys = pipeline
                    .columns
                    .iter()
                    .filter(|c| c.unique && c.spec.data_type == planner::types::ColumnType::Date)
                    .map(|c| c.dest.clone())
                    .collect();
                Box::new(
                    GroupChecksums::new(
                        rows,
                        destination,
                        key_schema(pipeline),
                        date_keys,
                        page_rows(&work.operators),
                    )
                    .with_secondary(secondary.clone(), *leaf_rows),
                )
            }
            OperatorSpec::GroupDeletes => Box::new(GroupDeletes::new(key_columns(pipeline))),
            OperatorSpec::TrackMoves => {
                let (rows, reader) = moves_rows
                    .take()
                    .expect("plans with track_moves open its row source");
                let memory = moves.clone().ok_or_else(|| {
                    EngineError::Unsupported(
                        "track_moves remembers rows' groups in the coordinator's state store: run the pipeline with synchub run".to_string(),
                    )
                })?;
                Box::new(TrackMoves::new(
                    rows,
                    reader,
                    memory,
                    page_rows(&work.operators),
                ))
            }
            OperatorSpec::Fetch {
                page_rows,
                only_changes,
            } => Box::new(Fetch::new(
                source.take().expect("one fetch per plan"),
                *page_rows,
                progress.clone(),
                if *only_changes {
                    FetchMode::Changes {
                        key_columns: key_columns(pipeline),
                    }
                } else if tracks_moves {
                    FetchMode::WithListedGroups {
                        keys: group_key_columns(pipeline)?,
                    }
                } else {
                    FetchMode::Partitions
                },
            )),
            OperatorSpec::Regroup => {
                let aggregate = pipeline
                    .aggregate
                    .clone()
                    .expect("regroup is planned for aggregate syncs only");
                let rows: Vec<_> = pipeline
                    .read_columns()
                    .iter()
                    .map(|c| c.spec.clone())
                    .collect();
                Box::new(
                    Regroup::new(
                        aggregate,
                        planner::types::arrow_schema(&rows),
                        pipeline.columns.clone(),
                    )
                    .map_err(|source| EngineError::Operator {
                        operator: "regroup".into(),
                        source,
                    })?,
                )
            }
            OperatorSpec::Batcher { target_rows } => Box::new(Batcher::new(*target_rows)),
            OperatorSpec::Populate { .. } => {
                let sink = sink.take().expect("one populate per plan");
                let mode: WriteMode = work.write_mode;
                Box::new(
                    commits
                        .take()
                        .expect("one populate per plan")
                        .wrap(|on_commit| {
                            Populate::new(
                                sink,
                                mode,
                                work.identity.clone(),
                                progress.clone(),
                                on_commit,
                            )
                        }),
                )
            }
        });
    }
    Ok(ops)
}

/// The destination's columns of an aggregate's group keys, in the
/// group-by's order.
fn group_key_columns(
    pipeline: &Pipeline,
) -> Result<Vec<planner::model::MappedColumn>, EngineError> {
    let keys = pipeline
        .aggregate
        .as_ref()
        .map(|a| a.keys.as_slice())
        .unwrap_or_default();
    keys.iter()
        .map(|k| {
            pipeline
                .columns
                .iter()
                .find(|c| c.dest == k.dest)
                .cloned()
                .ok_or_else(|| {
                    EngineError::Unsupported(format!(
                        "group key \"{}\" has no destination column (the planner's bug)",
                        k.dest
                    ))
                })
        })
        .collect()
}

/// Positions of the unique key columns among the destination's.
fn key_columns(pipeline: &Pipeline) -> Vec<usize> {
    pipeline
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.unique)
        .map(|(i, _)| i)
        .collect()
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

fn page_rows(operators: &[OperatorSpec]) -> usize {
    operators
        .iter()
        .find_map(|o| match o {
            OperatorSpec::Fetch { page_rows, .. } => Some(*page_rows),
            _ => None,
        })
        .unwrap_or(planner::model::DEFAULT_PAGE_SIZE)
}
