//! The pipeline lock: one run of a pipeline at a time.
//!
//! A lock file per pipeline under `<state-dir>/locks/`, held with the
//! operating system's advisory file lock (`flock`): the kernel releases it
//! when the holder dies, even by `kill -9`, so a stale lock is taken over
//! without reading pids. The file keeps the holder's pid, host, run id and
//! start time for the message a second run prints. The file is never
//! removed: a process waiting on the old file while a third creates a new
//! one would let both in.
//!
//! A destination that can lock across machines (PostgreSQL's advisory locks)
//! is locked as well, by the run, through `Sink::try_lock`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::records::is_safe_name;

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

/// Who holds a pipeline's lock, as its lock file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub run_id: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub since: String,
}

impl LockHolder {
    fn me() -> LockHolder {
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

/// A held pipeline lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct PipelineLock {
    file: File,
    path: PathBuf,
    pipeline: String,
    holder: LockHolder,
}

impl PipelineLock {
    /// Takes `pipeline`'s lock in `state_dir`, waiting as `wait` says. A
    /// pipeline that stays locked is `EngineError::AlreadyRunning`.
    pub fn acquire(state_dir: &Path, pipeline: &str, wait: Wait) -> Result<Self, EngineError> {
        let deadline = wait.start();
        loop {
            match Self::try_acquire(state_dir, pipeline)? {
                Ok(lock) => return Ok(lock),
                Err(holder) => {
                    if !deadline.keep_waiting() {
                        return Err(EngineError::AlreadyRunning {
                            pipeline: pipeline.to_string(),
                            holder: holder.describe(),
                        });
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    /// One attempt: the lock, or who holds it.
    pub fn try_acquire(
        state_dir: &Path,
        pipeline: &str,
    ) -> Result<Result<Self, LockHolder>, EngineError> {
        let dir = state_dir.join("locks");
        crate::files::create_private_dir(&dir).map_err(|e| lock_error(&dir, e))?;
        let path = dir.join(lock_file_name(pipeline));
        let mut file = crate::files::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| lock_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Err(read_holder(&mut file))),
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&path, e)),
        }
        let mut lock = PipelineLock {
            file,
            path,
            pipeline: pipeline.to_string(),
            holder: LockHolder::me(),
        };
        lock.write_holder()?;
        Ok(Ok(lock))
    }

    /// Records the run id once the run has chosen it (new or resumed).
    pub fn set_run_id(&mut self, run_id: &str) -> Result<(), EngineError> {
        self.holder.run_id = Some(run_id.to_string());
        self.write_holder()
    }

    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    fn write_holder(&mut self) -> Result<(), EngineError> {
        let text = serde_json::to_string(&self.holder).unwrap_or_default();
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            f.write_all(text.as_bytes())?;
            f.flush()
        };
        write(&mut self.file).map_err(|e| lock_error(&self.path, e))
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        // Emptied first, so a reader never sees a released lock's holder as
        // current; the kernel lock goes with the file handle.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Whether `pipeline` is running now, and who runs it. Takes and drops the
/// lock to find out; for commands that must not act on a running pipeline
/// (`state reset`, `state cleanup`) use `PipelineLock::acquire` and hold it.
pub fn running(state_dir: &Path, pipeline: &str) -> Result<Option<LockHolder>, EngineError> {
    if !state_dir.join("locks").is_dir() {
        return Ok(None);
    }
    Ok(PipelineLock::try_acquire(state_dir, pipeline)?.err())
}

/// Takes `pipeline`'s lock without waiting, for a command that must not act
/// while it runs. `None` when the state directory has never held a lock
/// (so no run can be going on), and nothing is created then.
pub fn hold_unless_running(
    state_dir: &Path,
    pipeline: &str,
) -> Result<Option<PipelineLock>, EngineError> {
    if !state_dir.join("locks").is_dir() {
        return Ok(None);
    }
    PipelineLock::acquire(state_dir, pipeline, Wait::No).map(Some)
}

/// What a lock file says of its holder. A holder that has just locked may
/// not have written it yet: read again a few times before saying so.
fn read_holder(file: &mut File) -> LockHolder {
    for _ in 0..10 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_string(&mut text).is_ok() {
            if let Ok(holder) = serde_json::from_str::<LockHolder>(&text) {
                return holder;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    LockHolder {
        pid: 0,
        host: "unknown".to_string(),
        run_id: None,
        since: "just now".to_string(),
    }
}

/// `<pipeline>.lock`; a name that could leave the folder is hashed instead.
fn lock_file_name(pipeline: &str) -> String {
    if is_safe_name(pipeline) {
        format!("{pipeline}.lock")
    } else {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in pipeline.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        format!("pipeline-{h:016x}.lock")
    }
}

fn lock_error(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::State {
        path: path.display().to_string(),
        message: format!("cannot lock the pipeline: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_taken_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = PipelineLock::acquire(dir.path(), "orders", Wait::No).unwrap();
        first.set_run_id("20261206_220000_abcdef").unwrap();
        let err = PipelineLock::acquire(dir.path(), "orders", Wait::No).unwrap_err();
        let expected = format!(
            "pipeline orders is already running (run id 20261206_220000_abcdef, host {}, pid {}, since {} UTC)",
            host_name(),
            std::process::id(),
            first.holder().since
        );
        assert_eq!(err.to_string(), expected);
        assert_eq!(
            running(dir.path(), "orders").unwrap().map(|h| h.pid),
            Some(std::process::id())
        );
        // Another pipeline is not affected.
        drop(PipelineLock::acquire(dir.path(), "users", Wait::No).unwrap());
        drop(first);
        assert_eq!(running(dir.path(), "orders").unwrap(), None);
        drop(PipelineLock::acquire(dir.path(), "orders", Wait::No).unwrap());
    }

    #[test]
    fn waiting_gets_the_lock_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = PipelineLock::acquire(dir.path(), "orders", Wait::No).unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let started = Instant::now();
        let second = PipelineLock::acquire(dir.path(), "orders", Wait::Up(Duration::from_secs(30)));
        assert!(second.is_ok(), "{second:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));
        released.join().unwrap();
        let err = {
            let _held = second.unwrap();
            PipelineLock::acquire(dir.path(), "orders", Wait::Up(Duration::from_millis(300)))
                .unwrap_err()
        };
        assert!(
            err.to_string()
                .starts_with("pipeline orders is already running (run id not chosen yet, host "),
            "{err}"
        );
    }

    #[test]
    fn odd_names_stay_inside_the_lock_folder() {
        assert_eq!(lock_file_name("orders_v2"), "orders_v2.lock");
        let odd = lock_file_name("../x");
        assert!(odd.starts_with("pipeline-") && !odd.contains('/'), "{odd}");
    }
}
