//! A run whose partitions workers execute (`synchub run --queue redis`):
//! the coordinator plans and starts the run as for a run of its own, puts
//! each partition still to do on the Redis queue as a task, records each
//! task's outcome as workers report it, and ends the run once every task
//! is committed, or at the first that fails.
//!
//! The coordinator keeps the run's state and locks (the state directory's
//! and the destination's) until the run ends; workers need neither. A
//! coordinator that stops leaves its run to resume: its queued tasks are
//! dropped by the workers (their attempt is no longer the run's), and the
//! next `synchub run` skips what they committed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use operators::RunProgress;

use super::queue::{Attempt, RedisQueue, TaskDone};
use crate::coordinator::{conclude, plan_run, start, PlannedRun};
use crate::error::EngineError;
use crate::records::RunRecorder;
use crate::run::{RunOptions, RunOutcome};
use crate::task::{PartitionOutcome, PartitionTask};

/// Runs a pipeline to the end with its partitions executed by the workers
/// of `queue`. Errors before the run starts are `Err`, as for
/// [`crate::run_pipeline`]; a run that starts and fails or is cancelled
/// returns its summary with `error` set.
pub async fn run_on_queue(
    opts: &RunOptions,
    progress: Arc<RunProgress>,
    queue: &RedisQueue,
) -> Result<RunOutcome, EngineError> {
    let started = Instant::now();
    let started_us = operators::progress::epoch_micros();
    // The destination's session, holding its lock, lives until the run ends.
    let (mut run, _connections) = plan_run(opts).await?;
    crate::coordinator::refuse_aggregate_tasks(&run.pipeline)?;
    let task_run = Arc::new(run.work().to_task_run());
    // Every task is serialized before the run is marked started: a secret
    // written in clear leaves no run behind.
    let tasks: Vec<(String, String)> = std::mem::take(&mut run.todo)
        .into_iter()
        .map(|partition| {
            let id = partition.id.clone();
            let task = PartitionTask {
                run: task_run.clone(),
                partition,
            };
            serde_json::to_string(&task)
                .map(|json| (id, json))
                .map_err(|e| EngineError::Task(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let (mut conn, mut reader) = tokio::try_join!(queue.connection(), queue.connection())?;
    let recorder = start(&run, &opts.state_dir, &progress).await?;
    let attempt = queue.open_attempt(&mut conn, &run.run_id).await?;
    tracing::info!(
        pipeline = %run.pipeline.name,
        run_id = %run.run_id,
        tasks = tasks.len(),
        queue = queue.name(),
        "tasks queued for workers"
    );
    recorder.log(
        "info",
        "tasks queued for workers",
        serde_json::json!({ "tasks": tasks.len(), "queue": queue.name() }),
    );
    let mut entries = Vec::with_capacity(tasks.len());
    let mut waiting = Waiting {
        run: &run,
        recorder: &recorder,
        progress: &progress,
        partitions: tasks.iter().map(|(id, _)| id.clone()).collect(),
        workers: HashSet::new(),
    };
    let result = async {
        for (_, json) in &tasks {
            entries.push(queue.enqueue(&mut conn, &attempt, json).await?);
        }
        waiting.until_done(queue, &mut reader, &attempt, opts).await
    }
    .await;
    let workers = waiting.workers.len() as u64;
    // Whatever became of the run, its tasks still queued are not to run.
    if let Err(e) = queue.close_attempt(&mut conn, &attempt, &entries).await {
        tracing::warn!(error = %e.message(), "cannot take the run's tasks off the queue");
    }
    conclude(
        &run,
        &recorder,
        &progress,
        (started, started_us),
        workers,
        result.map(|()| Vec::new()),
    )
    .await
}

/// The tasks of a run not yet reported committed.
struct Waiting<'a> {
    run: &'a PlannedRun,
    recorder: &'a RunRecorder,
    progress: &'a RunProgress,
    partitions: HashSet<String>,
    /// Workers that committed a task.
    workers: HashSet<String>,
}

impl Waiting<'_> {
    async fn until_done(
        &mut self,
        queue: &RedisQueue,
        reader: &mut redis::aio::MultiplexedConnection,
        attempt: &Attempt,
        opts: &RunOptions,
    ) -> Result<(), EngineError> {
        while !self.partitions.is_empty() {
            let done = tokio::select! {
                reason = opts.cancel.cancelled() => return Err(EngineError::Cancelled(reason)),
                done = queue.next_done(reader, attempt) => done?,
            };
            if let Some(done) = done {
                self.record(done).await?;
            }
        }
        Ok(())
    }

    async fn record(&mut self, done: TaskDone) -> Result<(), EngineError> {
        let (pipeline, strategy) = (&self.run.pipeline.name, &self.run.plan.strategy);
        crate::telemetry::partition_retried(
            pipeline,
            strategy,
            u64::from(done.attempts.saturating_sub(1)),
        );
        if done.status != "committed" {
            crate::telemetry::partition_failed(pipeline, strategy);
            self.recorder.partition_failed(
                &done.partition,
                &done.worker,
                done.attempts,
                done.error.as_deref().unwrap_or("no error given"),
            );
            return Err(EngineError::WorkerFailed {
                worker: done.worker,
                partition: done.partition,
                attempts: done.attempts,
                message: done.error.unwrap_or_else(|| "no error given".to_string()),
            });
        }
        // A task redone after its worker stopped may be reported twice.
        if !self.partitions.remove(&done.partition) {
            return Ok(());
        }
        let (run, state) = (&self.run.run_id, &self.run.state);
        self.workers.insert(done.worker.clone());
        for report in &done.reports {
            if let PartitionOutcome::Committed(stats) = &report.outcome {
                state
                    .record_partition(run, &report.partition_id, stats)
                    .await?;
                self.recorder
                    .partition_committed(0, &report.partition_id, stats);
            }
        }
        if done.already_committed {
            state
                .record_partition(run, &done.partition, &Default::default())
                .await?;
        }
        let p = self.progress;
        for (counter, n) in [
            (&p.rows_read, done.rows_read),
            (&p.rows_inserted, done.rows_inserted),
            (&p.rows_updated, done.rows_updated),
            (&p.rows_deleted, done.rows_deleted),
            (&p.rows_unchanged, done.rows_unchanged),
            (&p.partitions_done, 1),
        ] {
            RunProgress::add(counter, n);
        }
        p.partition_taken();
        p.partition_committed();
        Ok(())
    }
}
