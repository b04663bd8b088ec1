use std::sync::Arc;

use async_trait::async_trait;
use planner::partition::Partition;

use crate::message::Message;
use crate::operator::{Operator, Output, Result};

/// Emits the partitions still to do, each as a start/end pair the next
/// operators fill with rows.
pub struct PartitionSource {
    partitions: Vec<Partition>,
}

impl PartitionSource {
    pub fn new(partitions: Vec<Partition>) -> Self {
        PartitionSource { partitions }
    }
}

#[async_trait]
impl Operator for PartitionSource {
    fn name(&self) -> &'static str {
        "partition_source"
    }

    async fn on_start(&mut self, out: &mut Output) -> Result<()> {
        for p in std::mem::take(&mut self.partitions) {
            let p = Arc::new(p);
            out.send(Message::PartitionStart(p.clone())).await?;
            out.send(Message::PartitionEnd(p)).await?;
        }
        Ok(())
    }
}
