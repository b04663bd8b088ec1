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
    pub retries: Retries,
}

/// How a task whose error may pass (`EngineError::retryable`) is run
/// again: up to `count` more times, after `base` × 2^(attempt−1) (at most a
/// minute), each delay scaled by a random factor in [0.5, 1.5) so workers
/// that failed together do not retry together.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub count: u32,
    pub base: Duration,
}

impl Retries {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(Duration::from_secs(60));
        let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        exponential.mul_f64(jitter)
    }
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
    /// The task failed with an error a retry may get past; it runs again
    /// after `delay_seconds`, still held by this worker.
    Retrying {
        worker: String,
        run_id: String,
        partition: String,
        attempt: u32,
        delay_seconds: f64,
        error: String,
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
            retries: opts.retries,
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
    retries: Retries,
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
                Some((reader, writer)) => match self.queue.seen(writer, &self.consumer).await {
                    Ok(()) => self.one_task(reader, writer).await,
                    Err(e) => Err(e),
                },
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
                let done = TaskDone::failed_with(
                    &self.consumer,
                    "",
                    &format!("queue entry {}", claimed.entry),
                    format!("worker {} cannot read the task: {why}", self.consumer),
                    false,
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
        let mut attempt = 1;
        let done = loop {
            let cancel = Cancel::default();
            // A later attempt, or a task taken over, may find its partition
            // committed already.
            let check_committed = claimed.reclaimed || attempt > 1;
            let (outcome, lost) = match injected_failure() {
                Some(e) => (Err(e), false),
                None => {
                    let work = run_task(task.clone(), &self.types, &cancel, check_committed);
                    self.held(work, &claimed, writer, &cancel).await
                }
            };
            if lost {
                self.lost(run_id, partition);
                return Ok(false);
            }
            let mut done = match outcome {
                Ok(outcome) => self.done(outcome),
                // It could not start (a datastore unresolvable here, a
                // database unreachable): the run hears why.
                Err(e) => TaskDone::failed(&self.consumer, &run_id, &partition, &e),
            };
            done.attempts = attempt;
            if done.status == "committed" || !done.retryable || attempt > self.retries.count {
                break done;
            }
            let delay = self.retries.delay(attempt);
            (self.events)(&WorkerEvent::Retrying {
                worker: self.consumer.clone(),
                run_id: run_id.clone(),
                partition: partition.clone(),
                attempt,
                delay_seconds: delay.as_secs_f64(),
                error: done.error.clone().unwrap_or_default(),
            });
            // Still held while it waits: no other worker takes it over.
            let ((), lost) = self
                .held(tokio::time::sleep(delay), &claimed, writer, &cancel)
                .await;
            if lost {
                self.lost(run_id, partition);
                return Ok(false);
            }
            attempt += 1;
        };
        // Said before the queue hears it: a worker killed between the two
        // has its task taken over (and found committed) rather than leaving
        // a task done that its log never named.
        (self.events)(&WorkerEvent::Done(done.clone()));
        queue.complete(writer, &claimed, &done).await?;
        Ok(true)
    }

    /// Another worker took the task over: it is that one's to report.
    fn lost(&self, run_id: String, partition: String) {
        (self.events)(&WorkerEvent::Lost {
            worker: self.consumer.clone(),
            run_id,
            partition,
        });
    }

    /// Awaits `work` while heartbeating `claimed`; `true` beside its output
    /// when another worker took the task over meanwhile (then `cancel` is
    /// cancelled, which stops a task's run before its next commit).
    async fn held<T>(
        &self,
        work: impl std::future::Future<Output = T>,
        claimed: &Claimed,
        writer: &mut MultiplexedConnection,
        cancel: &Cancel,
    ) -> (T, bool) {
        tokio::pin!(work);
        let every = (self.reclaim_after / 3).max(Duration::from_millis(100));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut lost = false;
        loop {
            tokio::select! {
                output = &mut work => return (output, lost),
                _ = beat.tick(), if !lost => {
                    match self.queue.heartbeat(writer, &self.consumer, claimed).await {
                        Ok(true) => {
                            if let Err(e) = self.queue.seen(writer, &self.consumer).await {
                                tracing::warn!(error = %e.message(), "cannot say this worker is alive");
                            }
                        }
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
            attempts: 1,
            retryable: o.retryable,
        }
    }
}

/// Test builds only: `SYNCHUB_TEST_TRANSIENT_FAILURES=N` makes this
/// process's first N task attempts fail with a transient database error
/// (a connection reset), before they touch anything.
#[cfg(feature = "fault-injection")]
fn injected_failure() -> Option<EngineError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    let failures: u64 = std::env::var("SYNCHUB_TEST_TRANSIENT_FAILURES")
        .ok()?
        .parse()
        .ok()?;
    (ATTEMPTS.fetch_add(1, Ordering::Relaxed) < failures).then(|| {
        EngineError::Connector(connectors::ConnectorError::Database {
            connector: "PostgreSQL",
            kind: connectors::ErrorKind::Transient,
            message: "connection reset by peer (injected by SYNCHUB_TEST_TRANSIENT_FAILURES)"
                .to_string(),
            source: None,
        })
    })
}

#[cfg(not(feature = "fault-injection"))]
fn injected_failure() -> Option<EngineError> {
    None
}
