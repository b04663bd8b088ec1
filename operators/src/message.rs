use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use planner::partition::Partition;

/// What flows between operators. Control travels in-band with the data, so an
/// operator sees a partition's start, its batches and its end in order. Every
/// message carries its partition (a shared `Arc`, no copy), so an operator
/// fed by two inputs (an aggregate, an enrichment) can tell which partition
/// each message belongs to and join the streams. Operators send data
/// messages through [`crate::Output`]'s `batch`, `changes`, `delete` and
/// `unchanged`, which stamp them with the partition the output is in.
#[derive(Debug, Clone)]
pub enum Message {
    PartitionStart(Arc<Partition>),
    Batch(Arc<Partition>, RecordBatch),
    /// What a hash comparison found in the partition: fetch only these
    /// rows, delete those keys.
    Changes(Arc<Partition>, Arc<ChangeSet>),
    /// Keys (unique columns, destination types) to delete in the partition.
    Delete(Arc<Partition>, RecordBatch),
    /// Rows of the partition found identical on both sides without being
    /// fetched; counted with the partition when it commits.
    Unchanged(Arc<Partition>, u64),
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
    /// An aggregate's range re-computed whole: the keys of the groups the
    /// destination holds in it. Those no re-computed group is written
    /// under are groups whose source rows are all gone, deleted with the
    /// range (`GroupDeletes`).
    pub destination_groups: Option<RecordBatch>,
}

impl Message {
    /// The partition this message belongs to.
    pub fn partition(&self) -> &Arc<Partition> {
        match self {
            Message::PartitionStart(p)
            | Message::Batch(p, _)
            | Message::Changes(p, _)
            | Message::Delete(p, _)
            | Message::Unchanged(p, _)
            | Message::PartitionEnd(p) => p,
        }
    }

    /// Rows this message holds, for channel accounting.
    pub fn rows(&self) -> usize {
        match self {
            Message::Batch(_, b) | Message::Delete(_, b) => b.num_rows(),
            _ => 0,
        }
    }

    /// The room the message takes in a channel bounded by rows: its rows,
    /// and the keys a change set names, so a comparison cannot run ahead
    /// of the writes by more than a channel's worth of keys.
    pub fn room(&self) -> usize {
        match self {
            Message::Changes(_, c) => c.upserts.num_rows() + c.deletes.num_rows(),
            other => other.rows(),
        }
    }
}
