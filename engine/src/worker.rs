//! A worker's side of a partition task: resolve it in this process's
//! environment, open its connections, execute it, and say what became of
//! it. `synchub worker run-task` prints the outcome.

use std::sync::Arc;
use std::time::Instant;

use operators::RunProgress;
use planner::ConnectorTypes;
use serde::Serialize;

use crate::commits::CommitRecords;
use crate::error::EngineError;
use crate::executor::{ExecutorConnections, ExecutorShared, PartitionExecutor};
use crate::records::RunRecorder;
use crate::run_context::{Cancel, RunContext};
use crate::runtime::OperatorStats;
use crate::task::{PartitionOutcome, PartitionReport, PartitionTask};
use crate::work_queue::{InMemoryWorkQueue, WorkQueue};

/// What running one task did.
#[derive(Debug, Clone, Serialize)]
pub struct TaskOutcome {
    pub pipeline: String,
    pub strategy: String,
    pub run_id: String,
    pub partition: String,
    /// `committed`, `failed` or `cancelled`.
    pub status: &'static str,
    /// Its checkpoint was in the destination already (a task taken over
    /// from a worker that stopped after committing it): nothing was done.
    /// `rows_read` is then the checkpoint's count; what the write inserted
    /// or updated went with the worker that did it.
    pub already_committed: bool,
    pub rows_read: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub rows_unchanged: u64,
    /// Each partition committed or failed: the task's, or the finer ones a
    /// hash comparison commits inside it.
    pub reports: Vec<PartitionReport>,
    pub duration_seconds: f64,
    pub operators: Vec<OperatorStats>,
    pub error: Option<String>,
    /// The error is of a kind a retry may get past (`EngineError::retryable`).
    pub retryable: bool,
}

/// Runs `task` here: its datastores resolved by `types` from this process's
/// environment. `Err` when it cannot start (an unresolvable datastore, an
/// unreachable database); a task that starts and fails returns its outcome
/// with `error` set. `check_committed`: first look for the partition's
/// checkpoint, and do nothing when it is there (a task another worker may
/// have committed).
pub async fn run_task(
    task: PartitionTask,
    types: &ConnectorTypes,
    cancel: &Cancel,
    check_committed: bool,
) -> Result<TaskOutcome, EngineError> {
    let started = Instant::now();
    let work = Arc::new(task.run.resolve(types, |v| std::env::var(v).ok())?);
    let mut connections = ExecutorConnections::open(&work).await?;
    let opened = started.elapsed();
    let committed = if check_committed {
        connections
            .committed(&work.identity, &task.partition.id)
            .await?
    } else {
        None
    };
    if let Some(rows) = committed {
        return Ok(TaskOutcome {
            pipeline: work.identity.pipeline.clone(),
            strategy: work.identity.strategy.clone(),
            run_id: work.identity.run_id.clone(),
            partition: task.partition.id.clone(),
            status: "committed",
            already_committed: true,
            rows_read: rows,
            rows_inserted: 0,
            rows_updated: 0,
            rows_deleted: 0,
            rows_unchanged: 0,
            reports: Vec::new(),
            duration_seconds: started.elapsed().as_secs_f64(),
            operators: Vec::new(),
            error: None,
            retryable: false,
        });
    }
    let queue = Arc::new(InMemoryWorkQueue::new(1));
    let partition = task.partition.id.clone();
    queue.push(task).await?;
    queue.end_of_tasks();
    let progress = Arc::new(RunProgress::default());
    let shared = ExecutorShared {
        work: work.clone(),
        queue: queue.clone(),
        run: RunContext {
            run_id: work.identity.run_id.clone(),
            cancel: cancel.clone(),
            progress: progress.clone(),
        },
        records: CommitRecords {
            run_id: work.identity.run_id.clone(),
            state: None,
            recorder: RunRecorder::disabled(),
            queue: queue.clone(),
            moves: None,
        },
    };
    let executor = PartitionExecutor::new(0, connections, false);
    let result = executor.run(&shared).await;
    tracing::debug!(
        partition = %partition,
        open_ms = opened.as_secs_f64() * 1000.0,
        run_ms = (started.elapsed() - opened).as_secs_f64() * 1000.0,
        "task's partition run"
    );
    let mut reports = Vec::new();
    while let Some(report) = queue.next_report().await? {
        reports.push(report);
    }
    let get = |c: &std::sync::atomic::AtomicU64| RunProgress::get(c);
    let retryable = result.as_ref().is_err_and(EngineError::retryable);
    let (status, operators, error) = match result {
        Ok(stats) => ("committed", stats, None),
        Err(e @ EngineError::Cancelled(_)) => ("cancelled", Vec::new(), Some(e.message())),
        Err(e) => ("failed", Vec::new(), Some(e.message())),
    };
    // A task that ends without error committed every partition it holds.
    debug_assert!(
        error.is_some()
            || reports
                .iter()
                .all(|r| matches!(r.outcome, PartitionOutcome::Committed(_)))
    );
    Ok(TaskOutcome {
        pipeline: work.identity.pipeline.clone(),
        strategy: work.identity.strategy.clone(),
        run_id: work.identity.run_id.clone(),
        partition,
        status,
        already_committed: false,
        rows_read: get(&progress.rows_read),
        rows_inserted: get(&progress.rows_inserted),
        rows_updated: get(&progress.rows_updated),
        rows_deleted: get(&progress.rows_deleted),
        rows_unchanged: get(&progress.rows_unchanged),
        reports,
        duration_seconds: started.elapsed().as_secs_f64(),
        operators,
        error,
        retryable,
    })
}
