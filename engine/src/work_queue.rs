//! How a run coordinator hands partition tasks to executors, and hears
//! back: a [`WorkQueue`]. [`InMemoryWorkQueue`] serves the executors of one
//! process; a queue shared by processes (Redis) serves workers elsewhere
//! through the same trait.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::task::{PartitionReport, PartitionTask};

/// A run's tasks and the executors' reports of them.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Adds a task, waiting while the queue is full. A closed queue drops it.
    async fn push(&self, task: PartitionTask) -> Result<(), EngineError>;

    /// No task follows the ones pushed: once they are taken, `pull` answers
    /// `None`.
    fn end_of_tasks(&self);

    /// The next task, waiting for one; `None` once the tasks have ended and
    /// every one is taken, or the queue is closed.
    async fn pull(&self) -> Result<Option<PartitionTask>, EngineError>;

    /// An executor's report of a task it took: committed or failed.
    async fn report(&self, report: PartitionReport) -> Result<(), EngineError>;

    /// The next report received and not yet read, without waiting.
    async fn next_report(&self) -> Result<Option<PartitionReport>, EngineError>;

    /// Stops handing out tasks (the run failed or is cancelled): executors
    /// finish what they hold and take no more; the tasks left are the next
    /// run's to resume.
    fn close(&self);
}

/// A bounded in-process queue: tokio channels, shared by the executors of
/// one run.
pub struct InMemoryWorkQueue {
    tasks: Mutex<Option<mpsc::Sender<PartitionTask>>>,
    pending: tokio::sync::Mutex<mpsc::Receiver<PartitionTask>>,
    reports_in: mpsc::UnboundedSender<PartitionReport>,
    reports_out: Mutex<mpsc::UnboundedReceiver<PartitionReport>>,
    closed: CancellationToken,
}

impl InMemoryWorkQueue {
    /// A queue holding at most `capacity` tasks not yet taken: the
    /// coordinator makes them as executors take them, so a run of many
    /// partitions never holds them all.
    pub fn new(capacity: usize) -> InMemoryWorkQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (reports_in, reports_out) = mpsc::unbounded_channel();
        InMemoryWorkQueue {
            tasks: Mutex::new(Some(tx)),
            pending: tokio::sync::Mutex::new(rx),
            reports_in,
            reports_out: Mutex::new(reports_out),
            closed: CancellationToken::new(),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<PartitionTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl WorkQueue for InMemoryWorkQueue {
    async fn push(&self, task: PartitionTask) -> Result<(), EngineError> {
        let Some(sender) = self.sender() else {
            return Err(EngineError::Task(
                "a task was pushed after the end of the run's tasks".to_string(),
            ));
        };
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => Ok(()),
            // Fails only once every receiver is gone, i.e. the queue is dropped.
            _ = sender.send(task) => Ok(()),
        }
    }

    fn end_of_tasks(&self) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    async fn pull(&self) -> Result<Option<PartitionTask>, EngineError> {
        if self.closed.is_cancelled() {
            return Ok(None);
        }
        let mut pending = tokio::select! {
            biased;
            _ = self.closed.cancelled() => return Ok(None),
            pending = self.pending.lock() => pending,
        };
        Ok(tokio::select! {
            biased;
            _ = self.closed.cancelled() => None,
            task = pending.recv() => task,
        })
    }

    async fn report(&self, report: PartitionReport) -> Result<(), EngineError> {
        // The receiver lives as long as the queue.
        let _ = self.reports_in.send(report);
        Ok(())
    }

    async fn next_report(&self) -> Result<Option<PartitionReport>, EngineError> {
        Ok(self
            .reports_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_recv()
            .ok())
    }

    fn close(&self) {
        self.closed.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use planner::partition::Partition;

    use super::*;
    use crate::task::{PartitionOutcome, TaskRun};

    /// Tasks of partitions `p0`… of one run; what else a task holds does not
    /// matter to the queue.
    fn tasks(n: usize) -> Vec<PartitionTask> {
        let run: TaskRun = serde_json::from_value(serde_json::json!({
            "format": crate::task::TASK_FORMAT,
            "identity": {"pipeline": "p", "strategy": "full", "run_id": "r", "fingerprint": "f"},
            "pipeline": {
                "name": "p", "file": "p.yaml", "columns": [], "batch_rows": 1, "datastores": {},
                "source": {"datastore": "d", "schema": null, "table": "t", "alias": null, "joins": [], "filters": []},
                "destination": {"datastore": "d", "schema": null, "table": "t", "alias": null, "joins": [], "filters": []}
            },
            "operators": [], "secondary": [], "channel_rows": 1, "write_mode": "merge"
        }))
        .unwrap();
        let run = Arc::new(run);
        (0..n)
            .map(|i| PartitionTask {
                run: run.clone(),
                partition: Partition {
                    id: format!("p{i}"),
                    ranges: Vec::new(),
                },
            })
            .collect()
    }

    async fn pulled(queue: &InMemoryWorkQueue) -> Option<String> {
        queue.pull().await.unwrap().map(|t| t.partition.id)
    }

    #[tokio::test]
    async fn tasks_come_out_in_order_and_end_after_the_last() {
        let queue = Arc::new(InMemoryWorkQueue::new(2));
        let feeder = {
            let queue = queue.clone();
            // More tasks than the queue holds: pushing waits for pulls.
            tokio::spawn(async move {
                for task in tasks(5) {
                    queue.push(task).await.unwrap();
                }
                queue.end_of_tasks();
            })
        };
        let mut ids = Vec::new();
        while let Some(id) = pulled(&queue).await {
            ids.push(id);
        }
        feeder.await.unwrap();
        assert_eq!(ids, ["p0", "p1", "p2", "p3", "p4"]);
        assert_eq!(pulled(&queue).await, None);
    }

    #[tokio::test]
    async fn a_closed_queue_hands_out_nothing_and_takes_without_waiting() {
        let queue = InMemoryWorkQueue::new(1);
        let mut tasks = tasks(3).into_iter();
        queue.push(tasks.next().unwrap()).await.unwrap();
        queue.close();
        assert_eq!(pulled(&queue).await, None);
        // Full and closed: a push returns at once (the task is the next run's).
        queue.push(tasks.next().unwrap()).await.unwrap();
        queue.push(tasks.next().unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn reports_are_read_back_in_the_order_sent() {
        let queue = InMemoryWorkQueue::new(1);
        assert_eq!(queue.next_report().await.unwrap(), None);
        for (id, outcome) in [
            ("p0", PartitionOutcome::Committed(Default::default())),
            (
                "p1",
                PartitionOutcome::Failed {
                    error: "boom".into(),
                },
            ),
        ] {
            queue
                .report(PartitionReport {
                    run_id: "r".into(),
                    partition_id: id.into(),
                    outcome,
                })
                .await
                .unwrap();
        }
        let first = queue.next_report().await.unwrap().unwrap();
        assert_eq!(first.partition_id, "p0");
        let second = queue.next_report().await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&second).unwrap(),
            serde_json::json!({"run_id": "r", "partition_id": "p1", "status": "failed", "error": "boom"})
        );
        assert_eq!(queue.next_report().await.unwrap(), None);
    }
}
