use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connectors::{RunIdentity, Sink, WriteStats};
use planner::partition::Partition;

use crate::operator::{Operator, OperatorError, Output, Result};
use crate::progress::RunProgress;

/// Called after a partition and its checkpoint are committed.
pub type CommitHook = Box<dyn FnMut(&Partition, WriteStats) -> Result<()> + Send>;

/// Writes each partition into the destination in one transaction together
/// with its checkpoint.
pub struct Populate {
    sink: Box<dyn Sink>,
    run: RunIdentity,
    progress: Arc<RunProgress>,
    on_commit: CommitHook,
}

impl Populate {
    pub fn new(
        sink: Box<dyn Sink>,
        run: RunIdentity,
        progress: Arc<RunProgress>,
        on_commit: CommitHook,
    ) -> Self {
        Populate {
            sink,
            run,
            progress,
            on_commit,
        }
    }
}

#[async_trait]
impl Operator for Populate {
    fn name(&self) -> &'static str {
        "populate"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, _out: &mut Output) -> Result<()> {
        self.sink.begin_partition(&p).await?;
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        self.sink.write(&batch).await?;
        RunProgress::add(&self.progress.rows_written, batch.num_rows() as u64);
        Ok(())
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, _out: &mut Output) -> Result<()> {
        let stats = self
            .sink
            .commit_partition(&self.run, &p)
            .await
            .map_err(OperatorError::from)?;
        RunProgress::add(&self.progress.rows_inserted, stats.inserted);
        RunProgress::add(&self.progress.rows_updated, stats.updated);
        RunProgress::add(&self.progress.rows_unchanged, stats.unchanged);
        RunProgress::add(&self.progress.partitions_done, 1);
        (self.on_commit)(&p, stats)
    }
}
