//! The state store: runs, their committed partitions and the delta
//! watermarks.
//!
//! For transactional destinations the authoritative checkpoint is the row the
//! sink writes in the same transaction as the data; this store mirrors it for
//! history and status only. A resumed run skips what the destination itself
//! records (see `crate::resume`), never what the store alone says.
//!
//! A run goes through `StateBackend`; `synchub state show`, `state reset`,
//! `state cleanup` and `history` through `StateReports`. Both are async and
//! name no database type. The one store so far is `SqliteStateStore`, a
//! SQLite file under the state directory worked on a thread of its own.

mod backend;
pub mod json;
mod reports;
mod runs;
mod sqlite;
mod status;
mod watermarks;

pub use backend::StateBackend;
pub use reports::{cleanup, CleanupReport, ResetReport, StateReports, StrategyState};
pub use runs::{new_run_id, RunInfo, RunRecord};
pub use sqlite::{SqliteStateStore, STATE_VERSION};
pub use status::RunStatus;
pub use watermarks::{display_watermark, WatermarkBinding, WatermarkInfo};

/// A time as the store writes it and reports show it:
/// `2024-01-15T12:00:00.000000Z`.
fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
