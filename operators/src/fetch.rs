use std::sync::Arc;

use async_trait::async_trait;
use connectors::Source;
use futures_util::StreamExt;
use planner::partition::Partition;

use crate::message::Message;
use crate::operator::{Operator, Output, Result};
use crate::progress::RunProgress;

/// Reads each partition from the source, already in the destination's
/// schema with every value checked to fit.
pub struct Fetch {
    source: Box<dyn Source>,
    page_rows: usize,
    progress: Arc<RunProgress>,
}

impl Fetch {
    pub fn new(source: Box<dyn Source>, page_rows: usize, progress: Arc<RunProgress>) -> Self {
        Fetch {
            source,
            page_rows,
            progress,
        }
    }
}

#[async_trait]
impl Operator for Fetch {
    fn name(&self) -> &'static str {
        "fetch"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        out.send(Message::PartitionStart(p.clone())).await?;
        let mut batches = self.source.read(&p, self.page_rows).await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            RunProgress::add(&self.progress.rows_read, batch.num_rows() as u64);
            out.send(Message::Batch(batch)).await?;
        }
        Ok(())
    }
}
