//! The pipeline lock: one run of a pipeline at a time.
//!
//! `Lock` takes a pipeline's lock, waiting as `Wait` says, and hands back a
//! `LockGuard` that releases it when dropped; either says who holds it.
//! `FileLock` is a lock file per pipeline under `<state-dir>/locks/`;
//! `RedisLock` holds it in Redis for coordinators on every host.
//!
//! `RedisTableLock` keeps a table's DDL from running beside its writes.
//!
//! A destination that can lock across machines (PostgreSQL's advisory locks)
//! is locked as well, by the run, through `Sink::try_lock`.

mod file;
mod redis_lock;
mod table;

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

pub use file::FileLock;
pub use redis_lock::{RedisLock, RedisLockGuard, DEFAULT_LOCK_TTL};
pub use table::{table_name, RedisTableLock, TableLockMode, TableLocks};

/// How long to wait for a pipeline that is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Give up at once.
    #[default]
    No,
    /// Wait at most this long.
    Up(Duration),
    /// Wait until it is free.
    Forever,
}

impl Wait {
    /// Starts waiting now: ask the returned deadline whether to go on.
    pub fn start(&self) -> Deadline {
        Deadline(match self {
            Wait::No => None,
            Wait::Up(d) => Some(Some(Instant::now() + *d)),
            Wait::Forever => Some(None),
        })
    }
}

/// When a wait that started ends: never waiting, at an instant, or never.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Option<Instant>>);

impl Deadline {
    pub fn keep_waiting(&self) -> bool {
        match self.0 {
            None => false,
            Some(None) => true,
            Some(Some(at)) => Instant::now() < at,
        }
    }
}

/// Polling interval while waiting for a lock.
pub const POLL: Duration = Duration::from_millis(200);

/// Who holds a pipeline's lock, as the lock records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub run_id: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub since: String,
}

impl LockHolder {
    /// This process, from now, its run not chosen yet.
    pub fn me() -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            run_id: None,
            since: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }

    /// `run id R, host H, pid P, since T`.
    pub fn describe(&self) -> String {
        format!(
            "run id {}, host {}, pid {}, since {} UTC",
            self.run_id.as_deref().unwrap_or("not chosen yet"),
            self.host,
            self.pid,
            self.since
        )
    }
}

/// This machine's name, for lock messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// One attempt at a pipeline's lock.
#[derive(Debug)]
pub enum TryLock {
    Acquired(Box<dyn LockGuard>),
    /// Somebody else has it.
    Held(LockHolder),
}

/// Pipeline locks, one per pipeline name.
#[async_trait]
pub trait Lock: Send + Sync {
    /// One attempt at `pipeline`'s lock, without waiting.
    async fn try_acquire(&self, pipeline: &str) -> Result<TryLock, EngineError>;

    /// Who holds `pipeline`'s lock now; `None` when it is free. Creates no
    /// lock where none was ever taken.
    async fn holder(&self, pipeline: &str) -> Result<Option<LockHolder>, EngineError>;

    /// Takes `pipeline`'s lock, waiting as `wait` says. A pipeline that
    /// stays locked is `EngineError::AlreadyRunning`, naming the holder.
    async fn acquire(&self, pipeline: &str, wait: Wait) -> Result<Box<dyn LockGuard>, EngineError> {
        let deadline = wait.start();
        let mut waited = false;
        loop {
            match self.try_acquire(pipeline).await? {
                TryLock::Acquired(guard) => return Ok(guard),
                TryLock::Held(holder) => {
                    if !std::mem::replace(&mut waited, true) {
                        crate::telemetry::lock_waited(pipeline);
                    }
                    if !deadline.keep_waiting() {
                        return Err(EngineError::AlreadyRunning {
                            pipeline: pipeline.to_string(),
                            holder: holder.describe(),
                        });
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }
}

/// A held pipeline lock; released when dropped.
#[async_trait]
pub trait LockGuard: Send + Sync + std::fmt::Debug {
    fn pipeline(&self) -> &str;

    /// This process, as the lock tells it to others.
    fn holder(&self) -> &LockHolder;

    /// Records the run id once the run has chosen it (new or resumed), for
    /// the message a second run prints.
    async fn set_run_id(&mut self, run_id: &str) -> Result<(), EngineError>;
}

/// Takes `pipeline`'s lock in `state_dir` without waiting, for a command
/// that must not act while it runs (`state reset`). `None` when the state
/// directory has never held a lock (so no run can be going on), and nothing
/// is created then.
pub async fn hold_unless_running(
    state_dir: &Path,
    pipeline: &str,
) -> Result<Option<Box<dyn LockGuard>>, EngineError> {
    match FileLock::existing(state_dir) {
        Some(locks) => locks.acquire(pipeline, Wait::No).await.map(Some),
        None => Ok(None),
    }
}
