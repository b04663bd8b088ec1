//! `synchub worker start`: a worker process that executes partition tasks
//! from the Redis queue until it is told to stop. `max_jobs` tasks run at
//! once, each on a loop of its own with its own Redis connections.
//!
//! A task is held while it runs by a heartbeat; one whose heartbeat finds
//! it taken over by another worker (this one stalled past the reclaim time)
//! is cancelled before its commit, and left to the new holder.

use std::sync::Arc;
use std::time::Duration;

use planner::ConnectorTypes;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use super::queue::{Claimed, RedisQueue, TaskDone};
use crate::error::EngineError;
use crate::run_context::Cancel;
use crate::worker::{run_task, TaskOutcome};

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Its name in the queue's consumer group (each job loop adds `-N`).
    pub name: String,
    /// Tasks run at once.
    pub max_jobs: usize,
    /// A task held by no heartbeat for this long is taken over.
    pub reclaim_after: Duration,
}

impl WorkerOptions {
    /// `host-pid`, unique among the workers of a queue.
    pub fn default_name() -> String {
        format!("{}-{}", crate::lock::host_name(), std::process::id())
    }
}

/// What a worker did, one line per event (`synchub worker start` prints
/// them as JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    Claimed {
        worker: String,
        run_id: String,
        partition: String,
        /// Taken over from a worker that stopped heartbeating.
        reclaimed: bool,
    },
    Done(TaskDone),
    /// A task of an attempt that has ended (its run failed, was cancelled,
    /// or its coordinator started over): taken off the queue unrun.
    Dropped {
        worker: String,
        run_id: String,
        partition: String,
    },
    /// Another worker took this one's task over; it was cancelled here.
    Lost {
        worker: String,
        run_id: String,
        partition: String,
    },
    /// The queue could not be read or written; the worker tries again.
    QueueError {
        worker: String,
        error: String,
    },
}

/// Tasks a worker finished (committed or failed), over its job loops.
pub type EventSink = Arc<dyn Fn(&WorkerEvent) + Send + Sync>;

/// Runs `opts.max_jobs` job loops until `drain` is cancelled; each finishes
/// the task it holds first. Returns how many tasks were finished.
pub async fn serve(
    queue: RedisQueue,
    opts: WorkerOptions,
    types: Arc<ConnectorTypes>,
    drain: Cancel,
    events: EventSink,
) -> u64 {
    let mut jobs = tokio::task::JoinSet::new();
    for job in 0..opts.max_jobs.max(1) {
        let job = JobLoop {
            queue: queue.clone(),
            consumer: format!("{}-{job}", opts.name),
            reclaim_after: opts.reclaim_after,
            types: types.clone(),
            events: events.clone(),
        };
        let drain = drain.clone();
        jobs.spawn(async move { job.run(&drain).await });
    }
    let mut finished = 0;
    while let Some(joined) = jobs.join_next().await {
        finished += joined.unwrap_or(0);
    }
    finished
}

struct JobLoop {
    queue: RedisQueue,
    consumer: String,
    reclaim_after: Duration,
    types: Arc<ConnectorTypes>,
    events: EventSink,
}

impl JobLoop {
    async fn run(&self, drain: &Cancel) -> u64 {
        let mut finished = 0;
        // One connection blocks on the stream; the other heartbeats and
        // reports meanwhile.
        let mut connections: Option<(MultiplexedConnection, MultiplexedConnection)> = None;
        while !drain.is_cancelled() {
            let result = match &mut connections {
                Some((reader, writer)) => self.one_task(reader, writer).await,
                None => match tokio::try_join!(self.queue.connection(), self.queue.connection()) {
                    Ok(pair) => {
                        connections = Some(pair);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(true) => finished += 1,
                Ok(false) => {}
                Err(e) => {
                    (self.events)(&WorkerEvent::QueueError {
                        worker: self.consumer.clone(),
                        error: e.message(),
                    });
                    connections = None;
                    tokio::select! {
                        _ = drain.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        if let Some((_, writer)) = &mut connections {
            if let Err(e) = self.queue.leave(writer, &self.consumer).await {
                tracing::warn!(error = %e.message(), "cannot leave the queue's group");
            }
        }
        finished
    }

    /// Claims and runs one task; `true` once it is finished and reported.
    async fn one_task(
        &self,
        reader: &mut MultiplexedConnection,
        writer: &mut MultiplexedConnection,
    ) -> Result<bool, EngineError> {
        let queue = &self.queue;
        let Some(claimed) = queue
            .claim(reader, &self.consumer, self.reclaim_after)
            .await?
        else {
            return Ok(false);
        };
        let task = match &claimed.task {
            Ok(task) => task.clone(),
            Err(why) => {
                // Its coordinator hears of it and fails the run, instead of
                // waiting for a task nobody can run.
                let done = TaskDone::failed(
                    &self.consumer,
                    "",
                    &format!("queue entry {}", claimed.entry),
                    format!("worker {} cannot read the task: {why}", self.consumer),
                );
                queue.complete(writer, &claimed, &done).await?;
                (self.events)(&WorkerEvent::Done(done));
                return Ok(true);
            }
        };
        let run_id = task.run.identity.run_id.clone();
        let partition = task.partition.id.clone();
        if !queue.is_current(writer, &run_id, &claimed).await? {
            queue.discard(writer, &claimed).await?;
            (self.events)(&WorkerEvent::Dropped {
                worker: self.consumer.clone(),
                run_id,
                partition,
            });
            return Ok(false);
        }
        (self.events)(&WorkerEvent::Claimed {
            worker: self.consumer.clone(),
            run_id: run_id.clone(),
            partition: partition.clone(),
            reclaimed: claimed.reclaimed,
        });
        let cancel = Cancel::default();
        let (outcome, lost) = self.run_held(task, &claimed, writer, &cancel).await;
        if lost {
            (self.events)(&WorkerEvent::Lost {
                worker: self.consumer.clone(),
                run_id,
                partition,
            });
            return Ok(false);
        }
        let done = match outcome {
            Ok(outcome) => self.done(outcome),
            // It could not start (a datastore unresolvable here, a database
            // unreachable): the run hears why.
            Err(e) => TaskDone::failed(&self.consumer, &run_id, &partition, e.message()),
        };
        queue.complete(writer, &claimed, &done).await?;
        (self.events)(&WorkerEvent::Done(done));
        Ok(true)
    }

    /// Runs `task` while heartbeating it; `true` beside the outcome when
    /// another worker took it over meanwhile (the run here is cancelled).
    async fn run_held(
        &self,
        task: crate::task::PartitionTask,
        claimed: &Claimed,
        writer: &mut MultiplexedConnection,
        cancel: &Cancel,
    ) -> (Result<TaskOutcome, EngineError>, bool) {
        let work = run_task(task, &self.types, cancel, claimed.reclaimed);
        tokio::pin!(work);
        let every = (self.reclaim_after / 3).max(Duration::from_millis(100));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut lost = false;
        loop {
            tokio::select! {
                outcome = &mut work => return (outcome, lost),
                _ = beat.tick(), if !lost => {
                    match self.queue.heartbeat(writer, &self.consumer, claimed).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost = true;
                            cancel.cancel("another worker took the task over");
                        }
                        // A missed beat is not a lost task: the task goes
                        // on, and the next beat tries again.
                        Err(e) => tracing::warn!(error = %e.message(), "heartbeat failed"),
                    }
                }
            }
        }
    }

    fn done(&self, o: TaskOutcome) -> TaskDone {
        TaskDone {
            worker: self.consumer.clone(),
            run_id: o.run_id,
            partition: o.partition,
            status: match o.status {
                "committed" => "committed",
                _ => "failed",
            }
            .to_string(),
            already_committed: o.already_committed,
            rows_read: o.rows_read,
            rows_inserted: o.rows_inserted,
            rows_updated: o.rows_updated,
            rows_deleted: o.rows_deleted,
            rows_unchanged: o.rows_unchanged,
            reports: o.reports,
            duration_seconds: o.duration_seconds,
            error: o.error,
        }
    }
}
