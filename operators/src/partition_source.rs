use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use planner::partition::Partition;
use tokio::sync::Semaphore;

use crate::message::Message;
use crate::operator::{Operator, Output, Result};

/// Where a lane's partitions come from: a run's work queue, or a fixed
/// list ([`PartitionQueue`]).
#[async_trait]
pub trait PartitionFeed: Send + Sync {
    /// The next partition for this lane; `None` once there are no more (the
    /// queue is drained, or closed because the run stops).
    async fn next_partition(&self) -> Result<Option<Partition>>;
}

/// The partitions of a run still to be handed out, shared by the lanes that
/// write them at once (`max_concurrent_partitions`). A lane takes the next
/// one when it has room for it, so a faster lane takes more. Closing the
/// queue (a lane failed) leaves the other lanes the partitions they already
/// hold, and no more.
#[derive(Debug, Default)]
pub struct PartitionQueue {
    todo: Mutex<VecDeque<Partition>>,
    closed: AtomicBool,
}

impl PartitionQueue {
    pub fn new(partitions: Vec<Partition>) -> Arc<PartitionQueue> {
        Arc::new(PartitionQueue {
            todo: Mutex::new(partitions.into()),
            closed: AtomicBool::new(false),
        })
    }

    /// The next partition, unless the queue is empty or closed.
    pub fn take(&self) -> Option<Partition> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        // A poisoned lock only means another lane panicked mid-take; the
        // queue itself is still whole.
        let mut todo = self.todo.lock().unwrap_or_else(|e| e.into_inner());
        todo.pop_front()
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

#[async_trait]
impl PartitionFeed for PartitionQueue {
    async fn next_partition(&self) -> Result<Option<Partition>> {
        Ok(self.take())
    }
}

/// Emits partitions from the queue, each as a start/end pair the next
/// operators fill with rows.
///
/// Alone, it hands out every partition at once (control messages take no
/// room in a channel, so the operators downstream work ahead as far as
/// they can). As one of several lanes it holds at most `slots` partitions
/// not yet committed: each commit gives a slot back (see [`LaneSlots`]),
/// so the partitions are shared out as the lanes finish them.
pub struct PartitionSource {
    queue: Arc<dyn PartitionFeed>,
    slots: Option<LaneSlots>,
}

/// The partitions one lane may hold uncommitted; its populate returns one
/// slot per commit of a partition the lane took (not of the finer leaves
/// a hash comparison commits inside it).
#[derive(Debug, Clone)]
pub struct LaneSlots {
    free: Arc<Semaphore>,
    taken: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl LaneSlots {
    pub fn new(slots: usize) -> LaneSlots {
        LaneSlots {
            free: Arc::new(Semaphore::new(slots.max(1))),
            taken: Arc::default(),
        }
    }

    /// A partition of this lane was committed: its slot is free again when
    /// it is one the lane took.
    pub fn release(&self, partition_id: &str) {
        let was_taken = self
            .taken
            .lock()
            .map(|mut t| t.remove(partition_id))
            .unwrap_or(false);
        if was_taken {
            self.free.add_permits(1);
        }
    }

    async fn acquire(&self) {
        if let Ok(permit) = self.free.acquire().await {
            permit.forget();
        }
    }

    fn took(&self, partition_id: &str) {
        if let Ok(mut t) = self.taken.lock() {
            t.insert(partition_id.to_string());
        }
    }

    /// Gives back a slot acquired for a partition the queue did not have.
    fn unused(&self) {
        self.free.add_permits(1);
    }
}

impl PartitionSource {
    /// Every partition of `queue`, at once.
    pub fn new(queue: Arc<dyn PartitionFeed>) -> Self {
        PartitionSource { queue, slots: None }
    }

    /// One lane of several: a partition of `queue` whenever `slots` has room.
    pub fn lane(queue: Arc<dyn PartitionFeed>, slots: LaneSlots) -> Self {
        PartitionSource {
            queue,
            slots: Some(slots),
        }
    }
}

#[async_trait]
impl Operator for PartitionSource {
    fn name(&self) -> &'static str {
        "partition_source"
    }

    async fn on_start(&mut self, out: &mut Output) -> Result<()> {
        loop {
            if let Some(slots) = &self.slots {
                slots.acquire().await;
            }
            let next = self.queue.next_partition().await;
            if next.is_err() {
                if let Some(slots) = &self.slots {
                    slots.unused();
                }
            }
            let Some(p) = next? else {
                if let Some(slots) = &self.slots {
                    slots.unused();
                }
                break;
            };
            if let Some(slots) = &self.slots {
                slots.took(&p.id);
            }
            let p = Arc::new(p);
            out.send(Message::PartitionStart(p.clone())).await?;
            out.send(Message::PartitionEnd(p)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(n: usize) -> Vec<Partition> {
        (0..n)
            .map(|i| Partition {
                id: format!("p{i}"),
                ranges: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_closed_queue_hands_out_nothing_more() {
        let q = PartitionQueue::new(partitions(3));
        assert_eq!(q.take().map(|p| p.id), Some("p0".into()));
        q.close();
        assert!(q.take().is_none());
    }

    async fn next_start(rx: &mut crate::channel::RowReceiver) -> String {
        loop {
            match rx.recv().await {
                Some(Message::PartitionStart(p)) => return p.id.clone(),
                Some(_) => continue,
                None => panic!("source ended early"),
            }
        }
    }

    #[tokio::test]
    async fn a_lane_holds_at_most_its_slots_until_a_commit() {
        let q = PartitionQueue::new(partitions(5));
        let slots = LaneSlots::new(2);
        let (tx, mut rx, _) = crate::channel::row_channel(10);
        let mut source = PartitionSource::lane(q.clone(), slots.clone());
        let task = tokio::spawn(async move {
            let mut out = Output::new(Some(tx));
            source.on_start(&mut out).await
        });
        let mut started = Vec::new();
        started.push(next_start(&mut rx).await);
        started.push(next_start(&mut rx).await);
        // Two taken, none committed: the other three stay for other lanes.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(q.todo.lock().unwrap().len(), 3);
        // A leaf committed inside p0 frees nothing; p0 itself does.
        slots.release("p0_leaf");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(q.todo.lock().unwrap().len(), 3);
        slots.release("p0");
        started.push(next_start(&mut rx).await);
        assert_eq!(started, ["p0", "p1", "p2"]);
        q.close();
        slots.release("p1");
        task.await.unwrap().unwrap();
    }
}
