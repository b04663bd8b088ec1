//! Deletes the groups of an aggregate that vanished: in a range re-computed
//! whole, the destination's groups that no re-computed group replaced are
//! groups whose source rows are all gone (deleted, or moved to another
//! group).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{filter_record_batch, not};
use async_trait::async_trait;
use planner::partition::Partition;

use crate::keys::KeySet;
use crate::message::{ChangeSet, Message};
use crate::operator::{Operator, Output, Result};

pub struct GroupDeletes {
    /// Positions of the key columns in the groups' batches.
    key_columns: Vec<usize>,
    /// The destination's groups in the range being re-computed, and the
    /// keys re-computed so far.
    open: Option<(RecordBatch, KeySet)>,
}

impl GroupDeletes {
    pub fn new(key_columns: Vec<usize>) -> Self {
        GroupDeletes {
            key_columns,
            open: None,
        }
    }

    fn keys_of(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.key_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect()
    }
}

#[async_trait]
impl Operator for GroupDeletes {
    fn name(&self) -> &'static str {
        "group_deletes"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        self.open = None;
        out.send(Message::PartitionStart(p)).await
    }

    async fn on_changes(&mut self, changes: Arc<ChangeSet>, out: &mut Output) -> Result<()> {
        if let Some(groups) = &changes.destination_groups {
            let types: Vec<_> = groups
                .schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            self.open = Some((groups.clone(), KeySet::empty(&types)?));
        }
        out.changes(changes).await
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let keys = self.keys_of(&batch);
        if let Some((_, written)) = self.open.as_mut() {
            written.insert(&keys)?;
        }
        out.batch(batch).await
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        if let Some((groups, written)) = self.open.take() {
            let replaced = written.mask(groups.columns())?;
            let gone = filter_record_batch(&groups, &not(&replaced)?)?;
            if gone.num_rows() > 0 {
                out.delete(gone).await?;
            }
        }
        out.send(Message::PartitionEnd(p)).await
    }
}
