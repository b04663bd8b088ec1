//! Runs a plan: one actor per operator on row-bounded channels, first error
//! wins, partitions checkpointed, run state kept in a state store.
//!
//! The library installs no signal handler: its caller (the CLI, on SIGINT
//! or SIGTERM) stops a run through `RunOptions::cancel`.

pub mod commits;
pub mod demo;
pub mod error;
pub mod files;
pub mod load;
pub mod lock;
pub mod partitions;
pub mod records;
pub mod resume;
pub mod run;
pub mod runtime;
pub mod state;
pub mod verify;

pub use error::EngineError;
pub use load::load_pipeline;
pub use lock::{FileLock, Lock, LockGuard, Wait};
pub use run::{plan_pipeline, run_pipeline, Cancel, RunOptions, RunOutcome, RunSummary};
pub use state::{RunStatus, SqliteStateStore, StateBackend, StateReports};
