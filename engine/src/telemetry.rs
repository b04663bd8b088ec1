//! What runs count for Prometheus, through the `metrics` facade: where no
//! recorder is installed (a plain `synchub run`) the calls cost next to
//! nothing and keep nothing; the HTTP API installs one and renders it at
//! `/metrics`. Every metric is labelled with its pipeline and strategy.

use metrics::{counter, histogram};

use crate::run::RunSummary;

pub const ROWS_READ: &str = "synchub_rows_read_total";
pub const ROWS_INSERTED: &str = "synchub_rows_inserted_total";
pub const ROWS_UPDATED: &str = "synchub_rows_updated_total";
pub const ROWS_DELETED: &str = "synchub_rows_deleted_total";
pub const ROWS_UNCHANGED: &str = "synchub_rows_unchanged_total";
pub const PARTITIONS_DONE: &str = "synchub_partitions_done_total";
pub const PARTITIONS_FAILED: &str = "synchub_partitions_failed_total";
pub const PARTITIONS_RETRIED: &str = "synchub_partitions_retried_total";
pub const RUNS: &str = "synchub_runs_total";
pub const RUN_DURATION: &str = "synchub_run_duration_seconds";
pub const LOCK_WAITS: &str = "synchub_lock_waits_total";
pub const QUEUE_TASKS: &str = "synchub_queue_tasks";
pub const QUEUE_TASKS_WAITING: &str = "synchub_queue_tasks_waiting";
pub const QUEUE_OLDEST_TASK_AGE: &str = "synchub_queue_oldest_task_age_seconds";

/// A run that ended (completed, failed or cancelled): its rows and
/// partitions, its duration, and a run counted by status.
pub fn run_finished(s: &RunSummary) {
    let labels = [
        ("pipeline", s.pipeline.clone()),
        ("strategy", s.strategy.clone()),
    ];
    for (name, n) in [
        (ROWS_READ, s.rows_read),
        (ROWS_INSERTED, s.rows_inserted),
        (ROWS_UPDATED, s.rows_updated),
        (ROWS_DELETED, s.rows_deleted),
        (ROWS_UNCHANGED, s.rows_unchanged),
        (PARTITIONS_DONE, s.partitions_done),
    ] {
        counter!(name, &labels).increment(n);
    }
    histogram!(RUN_DURATION, &labels).record(s.duration_seconds);
    counter!(
        RUNS,
        "pipeline" => s.pipeline.clone(),
        "strategy" => s.strategy.clone(),
        "status" => s.status.as_str()
    )
    .increment(1);
}

/// A partition task that failed for good (its last attempt included).
pub fn partition_failed(pipeline: &str, strategy: &str) {
    counter!(PARTITIONS_FAILED, "pipeline" => pipeline.to_string(), "strategy" => strategy.to_string())
        .increment(1);
}

/// Attempts of a partition task after its first.
pub fn partition_retried(pipeline: &str, strategy: &str, retries: u64) {
    if retries > 0 {
        counter!(PARTITIONS_RETRIED, "pipeline" => pipeline.to_string(), "strategy" => strategy.to_string())
            .increment(retries);
    }
}

/// A pipeline lock found held by another run, waited for.
pub fn lock_waited(pipeline: &str) {
    counter!(LOCK_WAITS, "pipeline" => pipeline.to_string()).increment(1);
}
