use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use planner::partition::Partition;

use crate::message::Message;
use crate::operator::{Operator, Output, Result};

/// Re-cuts batches to `target_rows` within a partition: small pages are
/// merged so the sink writes in efficient sizes, big ones are sliced so no
/// single message outgrows the channel. Rows are held only while more are
/// queued behind them: when the input runs dry they go on, so a small
/// partition is written while the source still reads, not after.
pub struct Batcher {
    target_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl Batcher {
    pub fn new(target_rows: usize) -> Self {
        Batcher {
            target_rows: target_rows.max(1),
            pending: Vec::new(),
            pending_rows: 0,
        }
    }

    async fn flush(&mut self, out: &mut Output) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = if self.pending.len() == 1 {
            self.pending.pop().expect("one pending batch")
        } else {
            let schema = self.pending[0].schema();
            let merged = concat_batches(&schema, &self.pending)?;
            self.pending.clear();
            merged
        };
        self.pending_rows = 0;
        out.batch(batch).await
    }
}

#[async_trait]
impl Operator for Batcher {
    fn name(&self) -> &'static str {
        "batcher"
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.target_rows - self.pending_rows).min(batch.num_rows() - offset);
            self.pending.push(batch.slice(offset, take));
            self.pending_rows += take;
            offset += take;
            if self.pending_rows >= self.target_rows {
                self.flush(out).await?;
            }
        }
        Ok(())
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        self.flush(out).await?;
        out.send(Message::PartitionEnd(p)).await
    }

    async fn on_idle(&mut self, out: &mut Output) -> Result<()> {
        self.flush(out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::row_channel;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn batch(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
    }

    #[tokio::test]
    async fn recuts_batches_to_target_and_flushes_at_partition_end() {
        let (tx, mut rx, _) = row_channel(1_000_000);
        let mut out = Output::new(Some(tx));
        let mut b = Batcher::new(100);
        b.on_partition_start(Arc::new(Partition::whole()), &mut out)
            .await
            .unwrap();
        b.process_batch(batch(0..30), &mut out).await.unwrap();
        b.process_batch(batch(30..280), &mut out).await.unwrap();
        b.on_partition_end(Arc::new(Partition::whole()), &mut out)
            .await
            .unwrap();
        drop(out);
        let mut sizes = Vec::new();
        let mut values = Vec::new();
        while let Some(m) = rx.recv().await {
            if let Message::Batch(_, b) = m {
                sizes.push(b.num_rows());
                values.extend(
                    b.column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
            }
        }
        assert_eq!(sizes, [100, 100, 80]);
        assert_eq!(values, (0..280).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn passes_on_what_it_holds_when_the_input_runs_dry() {
        let (tx, mut rx, _) = row_channel(1_000_000);
        let mut out = Output::new(Some(tx));
        let mut b = Batcher::new(100);
        b.on_partition_start(Arc::new(Partition::whole()), &mut out)
            .await
            .unwrap();
        assert!(matches!(rx.try_recv(), Some(Message::PartitionStart(_))));
        b.process_batch(batch(0..30), &mut out).await.unwrap();
        b.process_batch(batch(30..50), &mut out).await.unwrap();
        assert!(rx.try_recv().is_none(), "held while more may come");
        b.on_idle(&mut out).await.unwrap();
        assert!(matches!(rx.try_recv(), Some(Message::Batch(_, m)) if m.num_rows() == 50));
        b.on_idle(&mut out).await.unwrap();
        assert!(rx.try_recv().is_none(), "nothing held, nothing sent");
    }
}
