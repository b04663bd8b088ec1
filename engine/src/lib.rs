//! Runs a plan: one actor per operator on row-bounded channels, first error
//! wins, partitions checkpointed, run state kept in a state store.
//!
//! A run coordinator (`coordinator`) plans each run and hands its partitions
//! as serializable tasks (`task`) through a work queue (`work_queue`) to
//! partition executors (`executor`), in this process or in workers
//! (`worker`). In production mode (`cluster`) the queue is a Redis stream
//! shared by worker processes on any host.
//!
//! The library installs no signal handler: its caller (the CLI, on SIGINT
//! or SIGTERM) stops a run through `RunOptions::cancel`.

pub mod cluster;
pub mod commits;
pub mod coordinator;
pub mod demo;
mod destination_lock;
pub mod error;
pub mod executor;
pub mod files;
pub mod load;
pub mod lock;
pub mod moves;
pub mod partitions;
pub mod records;
pub mod resume;
pub mod run;
pub mod run_context;
pub mod runtime;
pub mod state;
pub mod task;
pub mod telemetry;
pub mod verify;
pub mod work_queue;
pub mod worker;

pub use coordinator::{emit_tasks, run_pipeline};
pub use error::EngineError;
pub use load::load_pipeline;
pub use lock::{FileLock, Lock, LockGuard, Wait};
pub use run::{plan_pipeline, RunOptions, RunOutcome, RunSummary};
pub use run_context::{Cancel, RunContext};
pub use state::{RunStatus, SqliteStateStore, StateBackend, StateReports};
pub use task::{PartitionReport, PartitionTask};
pub use work_queue::{InMemoryWorkQueue, WorkQueue};
