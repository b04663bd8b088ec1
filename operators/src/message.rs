use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use planner::partition::Partition;

/// What flows between operators. Control travels in-band with the data, so an
/// operator sees a partition's start, its batches and its end in order.
#[derive(Debug, Clone)]
pub enum Message {
    PartitionStart(Arc<Partition>),
    Batch(RecordBatch),
    PartitionEnd(Arc<Partition>),
}

impl Message {
    /// Rows this message holds, for channel accounting.
    pub fn rows(&self) -> usize {
        match self {
            Message::Batch(b) => b.num_rows(),
            _ => 0,
        }
    }
}
