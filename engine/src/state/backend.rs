//! What a run reads and writes in the state store, whatever keeps it.

use std::collections::HashSet;

use async_trait::async_trait;

use super::status::RunStatus;
use super::watermarks::WatermarkBinding;
use crate::error::EngineError;

/// The state a run keeps between runs: its bookkeeping (runs started,
/// resumed, finished or abandoned, and the partitions they committed) and
/// the delta watermarks.
///
/// Calls are awaited on the run's own tasks, so an implementation does its
/// blocking I/O elsewhere (the SQLite store on a thread of its own). Nothing
/// here names a database type: a store on a server (PostgreSQL) implements
/// the same calls.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// Where the store is, as errors name it (`EngineError::State`'s path).
    fn location(&self) -> String;

    /// The latest run of `pipeline`/`strategy` that did not complete (and
    /// was not abandoned): the one the next run may resume.
    async fn resumable_run(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<String>, EngineError>;

    /// Marks `run_id` running: a new run, or a resumed one (its end, error
    /// and summary cleared).
    async fn start_run(
        &self,
        run_id: &str,
        pipeline: &str,
        strategy: &str,
    ) -> Result<(), EngineError>;

    /// Records how many partitions the run covers, once they are planned.
    async fn set_partitions_total(&self, run_id: &str, total: u64) -> Result<(), EngineError>;

    /// Records a committed partition with what its write did, deletes
    /// included; a partition recorded already is left as it is.
    async fn record_partition(
        &self,
        run_id: &str,
        partition_id: &str,
        stats: &connectors::WriteStats,
    ) -> Result<(), EngineError>;

    /// The partitions recorded for `run_id`.
    async fn completed_partitions(&self, run_id: &str) -> Result<HashSet<String>, EngineError>;

    /// Ends an unfinished run that will not be resumed, saying why.
    async fn abandon_run(&self, run_id: &str, why: &str) -> Result<(), EngineError>;

    /// Ends a run with its status, error and summary (`RunSummary` as JSON).
    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
        summary: &serde_json::Value,
    ) -> Result<(), EngineError>;

    /// The delta watermark of `pipeline`/`strategy`: its kind (`int` or
    /// `micros`) and value.
    async fn watermark(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<(String, i64)>, EngineError>;

    /// Stores (replacing) the delta watermark of `pipeline`/`strategy`;
    /// `kind` is `int` or `micros`, anything else is refused.
    async fn set_watermark(
        &self,
        pipeline: &str,
        strategy: &str,
        kind: &str,
        value: i64,
        binding: Option<&WatermarkBinding>,
    ) -> Result<(), EngineError>;

    /// What the watermark of `pipeline`/`strategy` was set against; `None`
    /// when there is no watermark or an older SyncHub set it.
    async fn watermark_binding(
        &self,
        pipeline: &str,
        strategy: &str,
    ) -> Result<Option<WatermarkBinding>, EngineError>;

    /// Binds every watermark of `pipeline` to the destination as a complete
    /// full run left it: it then holds every row the config selects, so rows
    /// past each watermark are all a delta needs to read.
    async fn rebind_watermarks(
        &self,
        pipeline: &str,
        binding: &WatermarkBinding,
    ) -> Result<(), EngineError>;

    /// The groups remembered for each of `rows` (source row keys) of
    /// `pipeline`, an aggregate with `track_moves`: (row key, group key).
    async fn row_groups_of(
        &self,
        pipeline: &str,
        rows: Vec<String>,
    ) -> Result<Vec<(String, String)>, EngineError>;

    /// Remembers these (row key, group key) pairs too.
    async fn remember_row_groups(
        &self,
        pipeline: &str,
        pairs: Vec<(String, String)>,
    ) -> Result<(), EngineError>;

    /// Forgets these pairs.
    async fn forget_row_groups(
        &self,
        pipeline: &str,
        pairs: Vec<(String, String)>,
    ) -> Result<(), EngineError>;

    /// Forgets every pair of `pipeline`, which is then not learned.
    async fn clear_row_groups(&self, pipeline: &str) -> Result<(), EngineError>;

    /// Records that every source row of `pipeline` has its group remembered.
    async fn set_row_groups_learned(&self, pipeline: &str) -> Result<(), EngineError>;

    /// Whether every source row of `pipeline` has its group remembered.
    async fn row_groups_learned(&self, pipeline: &str) -> Result<bool, EngineError>;
}
