//! Runs as the state store reports them.

use serde::Serialize;

use super::status::RunStatus;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub pipeline: String,
    pub strategy: String,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// One run with what it committed: a line of `synchub history`, the last run
/// in `synchub state show`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunInfo {
    /// Its status (`RunStatus`): a run whose process died stays `running`
    /// until the next run of its strategy resumes it.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Rows in the committed partitions (every attempt of a resumed run):
    /// inserted + updated + unchanged.
    pub rows: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_unchanged: u64,
    /// Destination rows deleted because the source no longer has them.
    pub rows_deleted: u64,
    /// Partitions committed so far.
    pub partitions_done: u64,
    /// Partitions the run covers; unknown until the run has planned them.
    pub partitions_total: Option<u64>,
    /// Wall time of the last attempt, once it ended.
    pub duration_seconds: Option<f64>,
}

/// `20240101_120000_abc123`: sortable by start time, unique by suffix.
pub fn new_run_id() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        &suffix[..6]
    )
}
