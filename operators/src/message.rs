use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use planner::partition::Partition;

/// What flows between operators. Control travels in-band with the data, so an
/// operator sees a partition's start, its batches and its end in order.
#[derive(Debug, Clone)]
pub enum Message {
    PartitionStart(Arc<Partition>),
    Batch(RecordBatch),
    /// What a hash comparison found in the current partition: fetch only
    /// these rows, delete those keys.
    Changes(Arc<ChangeSet>),
    /// Keys (unique columns, destination types) to delete in the current
    /// partition.
    Delete(RecordBatch),
    /// Rows of the current partition found identical on both sides without
    /// being fetched; counted with the partition when it commits.
    Unchanged(u64),
    PartitionEnd(Arc<Partition>),
}

/// The keys of one partition whose rows differ between source and destination.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// Fetch every row of the partition (its checksums differ and no
    /// row-level comparison was made); `upserts` and `deletes` are empty.
    pub all_rows: bool,
    /// Rows compared equal (by checksum or row hash); nothing to write.
    pub unchanged: u64,
    /// Keys present in the source that are new or changed.
    pub upserts: RecordBatch,
    /// Keys present only in the destination.
    pub deletes: RecordBatch,
}

impl Message {
    /// Rows this message holds, for channel accounting.
    pub fn rows(&self) -> usize {
        match self {
            Message::Batch(b) | Message::Delete(b) => b.num_rows(),
            _ => 0,
        }
    }

    /// The room the message takes in a channel bounded by rows: its rows,
    /// and the keys a change set names, so a comparison cannot run ahead
    /// of the writes by more than a channel's worth of keys.
    pub fn room(&self) -> usize {
        match self {
            Message::Changes(c) => c.upserts.num_rows() + c.deletes.num_rows(),
            other => other.rows(),
        }
    }
}
