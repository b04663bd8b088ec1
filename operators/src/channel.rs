//! Channels bounded by rows, not messages: a slow consumer stalls its producer
//! once `capacity` rows are queued, so memory stays at capacity × row width
//! whatever the table size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, Semaphore};

use crate::message::Message;

/// Time a producer spent blocked on a full channel, in microseconds.
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub blocked_micros: AtomicU64,
    pub rows_sent: AtomicU64,
}

pub struct RowSender {
    tx: mpsc::UnboundedSender<(Message, u32)>,
    permits: Arc<Semaphore>,
    capacity: u32,
    stats: Arc<ChannelStats>,
}

pub struct RowReceiver {
    rx: mpsc::UnboundedReceiver<(Message, u32)>,
    permits: Arc<Semaphore>,
}

/// A channel holding at most `capacity_rows` rows (control messages are free).
pub fn row_channel(capacity_rows: usize) -> (RowSender, RowReceiver, Arc<ChannelStats>) {
    let capacity = capacity_rows.clamp(1, u32::MAX as usize) as u32;
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(capacity as usize));
    let stats = Arc::new(ChannelStats::default());
    (
        RowSender {
            tx,
            permits: permits.clone(),
            capacity,
            stats: stats.clone(),
        },
        RowReceiver { rx, permits },
        stats,
    )
}

/// The receiving operator is gone (it failed or was cancelled).
#[derive(Debug)]
pub struct Closed;

impl RowSender {
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        // A batch larger than the whole channel takes all permits instead of
        // waiting forever for more than exist.
        let rows = (msg.room() as u64).min(self.capacity as u64) as u32;
        if rows > 0 {
            let start = Instant::now();
            let permit = self.permits.acquire_many(rows).await.map_err(|_| Closed)?;
            permit.forget();
            self.stats
                .blocked_micros
                .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.stats
                .rows_sent
                .fetch_add(msg.rows() as u64, Ordering::Relaxed);
        }
        self.tx.send((msg, rows)).map_err(|_| Closed)
    }
}

impl RowReceiver {
    pub async fn recv(&mut self) -> Option<Message> {
        let (msg, rows) = self.rx.recv().await?;
        self.permits.add_permits(rows as usize);
        Some(msg)
    }

    /// The next message if one is already queued.
    pub fn try_recv(&mut self) -> Option<Message> {
        let (msg, rows) = self.rx.try_recv().ok()?;
        self.permits.add_permits(rows as usize);
        Some(msg)
    }
}

impl Drop for RowReceiver {
    fn drop(&mut self) {
        // Wake a producer blocked on permits so it sees the channel closed.
        self.permits.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(n: usize) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let a = Int64Array::from_iter_values(0..n as i64);
        let whole = Arc::new(planner::partition::Partition::whole());
        Message::Batch(
            whole,
            RecordBatch::try_new(schema, vec![Arc::new(a)]).unwrap(),
        )
    }

    #[tokio::test]
    async fn blocks_when_rows_exceed_capacity() {
        let (tx, mut rx, _) = row_channel(100);
        tx.send(batch(60)).await.unwrap();
        // 60 + 60 > 100: the second send must wait until the first is received.
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), tx.send(batch(60))).await;
        assert!(blocked.is_err(), "second batch should wait for room");
        assert!(matches!(rx.recv().await, Some(Message::Batch(_, b)) if b.num_rows() == 60));
        tx.send(batch(60)).await.unwrap();
    }

    #[tokio::test]
    async fn change_sets_take_room_for_their_keys() {
        let keys = |n: usize| match batch(n) {
            Message::Batch(_, b) => b,
            _ => unreachable!(),
        };
        let changes = || {
            Message::Changes(
                Arc::new(planner::partition::Partition::whole()),
                Arc::new(crate::message::ChangeSet {
                    all_rows: false,
                    unchanged: 0,
                    upserts: keys(40),
                    deletes: keys(20),
                    destination_groups: None,
                }),
            )
        };
        let (tx, mut rx, _) = row_channel(100);
        tx.send(changes()).await.unwrap();
        // 60 keys queued: 60 more must wait until the first set is received.
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), tx.send(changes())).await;
        assert!(blocked.is_err(), "second change set should wait for room");
        assert!(matches!(rx.recv().await, Some(Message::Changes(..))));
        tx.send(changes()).await.unwrap();
        // Control messages take none.
        let whole = Arc::new(planner::partition::Partition::whole());
        tx.send(Message::Unchanged(whole, 5)).await.unwrap();
    }

    #[tokio::test]
    async fn oversized_batch_does_not_deadlock() {
        let (tx, mut rx, _) = row_channel(10);
        tx.send(batch(1000)).await.unwrap();
        assert!(matches!(rx.recv().await, Some(Message::Batch(_, b)) if b.num_rows() == 1000));
    }

    #[tokio::test]
    async fn send_fails_once_receiver_dropped() {
        let (tx, rx, _) = row_channel(10);
        tx.send(batch(10)).await.unwrap();
        drop(rx);
        assert!(tx.send(batch(5)).await.is_err());
    }
}
