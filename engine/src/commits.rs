//! What happens once an executor commits a partition: the run log hears of
//! it, the executor's slot is given back, the state store records it (when
//! this process keeps the run's state) and the work queue is told.
//!
//! `Populate` reports each commit through a synchronous hook (the operators'
//! API), and the state store is async. The hook starts the store's write at
//! once, on a task of its own, and hands it over; `RecordCommits`, wrapped
//! around `Populate`, awaits it before the lane goes on. So, as when the
//! store was written inside the hook, a lane never runs ahead of the store
//! by more than the partition it is writing, and a write that fails fails
//! the lane with the store's error.

use std::sync::Arc;

use async_trait::async_trait;
use operators::operator::{Output, Result as OpResult};
use operators::partition_source::LaneSlots;
use operators::{ChangeSet, Operator, OperatorError};
use planner::partition::Partition;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::records::RunRecorder;
use crate::state::StateBackend;
use crate::task::{PartitionOutcome, PartitionReport};
use crate::work_queue::WorkQueue;

/// A state store write under way.
type Recording = JoinHandle<Result<(), EngineError>>;

/// Where an executor's commits are recorded.
#[derive(Clone)]
pub struct CommitRecords {
    pub run_id: String,
    /// The run's state store, in the coordinator's process; a worker
    /// elsewhere reports to the queue only.
    pub state: Option<Arc<dyn StateBackend>>,
    pub recorder: RunRecorder,
    pub queue: Arc<dyn WorkQueue>,
    /// `track_moves`: the memory of rows' groups, told of each commit.
    pub moves: Option<Arc<dyn operators::track_moves::MovesMemory>>,
}

/// What a lane does after each commit: the hook its `Populate` calls, and
/// the store writes that hook starts.
pub struct LaneCommits {
    hook: operators::populate::CommitHook,
    recordings: mpsc::UnboundedReceiver<Recording>,
}

impl LaneCommits {
    /// `committed` collects the ids of the partitions committed.
    pub fn new(
        lane: usize,
        slots: Option<LaneSlots>,
        records: CommitRecords,
        committed: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    ) -> LaneCommits {
        let CommitRecords {
            run_id,
            state,
            recorder,
            queue,
            moves,
        } = records;
        let (recordings, received) = mpsc::unbounded_channel();
        let hook = Box::new(move |p: &Partition, s: connectors::WriteStats| {
            tracing::info!(partition = %p.id, lane, inserted = s.inserted, updated = s.updated, unchanged = s.unchanged, "partition committed");
            recorder.partition_committed(lane, &p.id, &s); // run log
            if let Some(slots) = &slots {
                slots.release(&p.id);
            }
            if let Ok(mut c) = committed.lock() {
                c.insert(p.id.clone());
            }
            let (state, queue, moves) = (state.clone(), queue.clone(), moves.clone());
            let (run_id, partition_id) = (run_id.clone(), p.id.clone());
            let recording = tokio::spawn(async move {
                if let Some(state) = state {
                    state.record_partition(&run_id, &partition_id, &s).await?;
                }
                // The groups the partition's rows left are re-computed now.
                if let Some(moves) = moves {
                    moves
                        .committed(&partition_id)
                        .await
                        .map_err(|e| EngineError::Operator {
                            operator: "track_moves".into(),
                            source: e,
                        })?;
                }
                queue
                    .report(PartitionReport {
                        run_id,
                        partition_id,
                        outcome: PartitionOutcome::Committed(s),
                    })
                    .await
            });
            // The receiver lives as long as the operator calling this hook.
            let _ = recordings.send(recording);
            Ok(())
        });
        LaneCommits {
            hook,
            recordings: received,
        }
    }

    /// The operator `build` makes with the hook (`Populate`), waiting after
    /// each partition for the store to record it.
    pub fn wrap<O: Operator>(
        self,
        build: impl FnOnce(operators::populate::CommitHook) -> O,
    ) -> RecordCommits<O> {
        RecordCommits {
            inner: build(self.hook),
            recordings: self.recordings,
        }
    }
}

/// `Populate` (or any operator given a `LaneCommits` hook), waiting after
/// each partition for the state store to record what it committed.
pub struct RecordCommits<O> {
    inner: O,
    recordings: mpsc::UnboundedReceiver<Recording>,
}

impl<O: Operator> RecordCommits<O> {
    /// Awaits every store write started so far; the first error is the
    /// lane's.
    async fn recorded(&mut self) -> OpResult<()> {
        let mut first_error = None;
        while let Ok(recording) = self.recordings.try_recv() {
            let result = match recording.await {
                Ok(result) => result.map_err(|e| OperatorError::Other(e.to_string())),
                Err(e) => Err(OperatorError::Other(format!(
                    "recording a partition in the state store: {e}"
                ))),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl<O: Operator> Operator for RecordCommits<O> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn on_start(&mut self, out: &mut Output) -> OpResult<()> {
        self.inner.on_start(out).await
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> OpResult<()> {
        self.inner.on_partition_start(p, out).await
    }

    async fn process_batch(
        &mut self,
        batch: arrow::record_batch::RecordBatch,
        out: &mut Output,
    ) -> OpResult<()> {
        self.inner.process_batch(batch, out).await
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> OpResult<()> {
        let committed = self.inner.on_partition_end(p, out).await;
        // Awaited even when the operator failed after its commit: the
        // partition is in the destination, so it goes in the store too.
        let recorded = self.recorded().await;
        committed.and(recorded)
    }

    async fn on_changes(&mut self, changes: Arc<ChangeSet>, out: &mut Output) -> OpResult<()> {
        self.inner.on_changes(changes, out).await
    }

    async fn on_delete(
        &mut self,
        keys: arrow::record_batch::RecordBatch,
        out: &mut Output,
    ) -> OpResult<()> {
        self.inner.on_delete(keys, out).await
    }

    async fn on_unchanged(&mut self, rows: u64, out: &mut Output) -> OpResult<()> {
        self.inner.on_unchanged(rows, out).await
    }

    async fn on_idle(&mut self, out: &mut Output) -> OpResult<()> {
        self.inner.on_idle(out).await
    }

    async fn on_finish(&mut self, out: &mut Output) -> OpResult<()> {
        let finished = self.inner.on_finish(out).await;
        let recorded = self.recorded().await;
        finished.and(recorded)
    }
}
