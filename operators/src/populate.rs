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
    /// The partition whose transaction is open, if any.
    open: Option<Arc<Partition>>,
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
            open: None,
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
        self.open = Some(p);
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
        self.open = None;
        RunProgress::add(&self.progress.rows_inserted, stats.inserted);
        RunProgress::add(&self.progress.rows_updated, stats.updated);
        RunProgress::add(&self.progress.rows_unchanged, stats.unchanged);
        RunProgress::add(&self.progress.partitions_done, 1);
        (self.on_commit)(&p, stats)
    }

    /// Input ended inside a partition (upstream failed): that partition is
    /// incomplete, so it is rolled back rather than committed.
    async fn on_finish(&mut self, _out: &mut Output) -> Result<()> {
        if let Some(p) = self.open.take() {
            tracing::warn!(partition = %p.id, "input ended mid-partition; rolling it back");
            self.sink.abort_partition().await?;
        }
        Ok(())
    }
}
