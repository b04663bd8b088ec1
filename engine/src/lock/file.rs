//! The pipeline lock as a file per pipeline under `<state-dir>/locks/`,
//! held with the operating system's advisory file lock (`flock`): the
//! kernel releases it when the holder dies, even by `kill -9`, so a stale
//! lock is taken over without reading pids. The file keeps the holder's pid,
//! host, run id and start time for the message a second run prints. The
//! file is never removed: a process waiting on the old file while a third
//! creates a new one would let both in.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::{Lock, LockGuard, LockHolder, TryLock};
use crate::error::EngineError;
use crate::records::is_safe_name;

/// The pipeline locks of one state directory.
#[derive(Debug, Clone)]
pub struct FileLock {
    state_dir: PathBuf,
}

impl FileLock {
    pub fn new(state_dir: &Path) -> FileLock {
        FileLock {
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// The locks of `state_dir` if it has ever held one; `None` (creating
    /// nothing) when it never has, so no run can be going on there.
    pub fn existing(state_dir: &Path) -> Option<FileLock> {
        state_dir
            .join("locks")
            .is_dir()
            .then(|| FileLock::new(state_dir))
    }

    /// Runs `f` on tokio's blocking pool: file calls, and a holder's file
    /// read again for a while when it is not written yet.
    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| EngineError::Panicked {
                operator: "pipeline lock".into(),
                message: e.to_string(),
            })?
    }
}

#[async_trait]
impl Lock for FileLock {
    async fn try_acquire(&self, pipeline: &str) -> Result<TryLock, EngineError> {
        let (state_dir, pipeline) = (self.state_dir.clone(), pipeline.to_string());
        Self::blocking(move || try_lock_file(&state_dir, &pipeline)).await
    }

    /// Takes and drops the lock to find out.
    async fn holder(&self, pipeline: &str) -> Result<Option<LockHolder>, EngineError> {
        if !self.state_dir.join("locks").is_dir() {
            return Ok(None);
        }
        match self.try_acquire(pipeline).await? {
            TryLock::Acquired(_) => Ok(None),
            TryLock::Held(holder) => Ok(Some(holder)),
        }
    }
}

/// One attempt: the lock, or who holds it.
fn try_lock_file(state_dir: &Path, pipeline: &str) -> Result<TryLock, EngineError> {
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
        Err(std::fs::TryLockError::WouldBlock) => return Ok(TryLock::Held(read_holder(&mut file))),
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&path, e)),
    }
    let holder = LockHolder::me();
    write_holder(&mut file, &path, &holder)?;
    Ok(TryLock::Acquired(Box::new(FileLockGuard {
        file,
        path,
        pipeline: pipeline.to_string(),
        holder,
    })))
}

/// A held pipeline lock file; released when dropped (or when the process
/// dies).
#[derive(Debug)]
pub struct FileLockGuard {
    file: File,
    path: PathBuf,
    pipeline: String,
    holder: LockHolder,
}

#[async_trait]
impl LockGuard for FileLockGuard {
    fn pipeline(&self) -> &str {
        &self.pipeline
    }

    fn holder(&self) -> &LockHolder {
        &self.holder
    }

    async fn set_run_id(&mut self, run_id: &str) -> Result<(), EngineError> {
        let mut holder = self.holder.clone();
        holder.run_id = Some(run_id.to_string());
        // A second handle on the same open file: the lock stays with it.
        let mut file = self
            .file
            .try_clone()
            .map_err(|e| lock_error(&self.path, e))?;
        let path = self.path.clone();
        let written = holder.clone();
        FileLock::blocking(move || write_holder(&mut file, &path, &written)).await?;
        self.holder = holder;
        Ok(())
    }
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        // Emptied first, so a reader never sees a released lock's holder as
        // current; the kernel lock goes with the file handle.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn write_holder(file: &mut File, path: &Path, holder: &LockHolder) -> Result<(), EngineError> {
    let text = serde_json::to_string(holder).unwrap_or_default();
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(text.as_bytes())?;
        f.flush()
    };
    write(file).map_err(|e| lock_error(path, e))
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
    use crate::lock::{host_name, Wait};
    use std::time::Instant;

    #[tokio::test]
    async fn a_second_lock_is_refused_with_the_holder_and_taken_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let locks = FileLock::new(dir.path());
        let mut first = locks.acquire("orders", Wait::No).await.unwrap();
        first.set_run_id("20261206_220000_abcdef").await.unwrap();
        assert_eq!(first.pipeline(), "orders");
        let err = locks.acquire("orders", Wait::No).await.unwrap_err();
        let expected = format!(
            "pipeline orders is already running (run id 20261206_220000_abcdef, host {}, pid {}, since {} UTC)",
            host_name(),
            std::process::id(),
            first.holder().since
        );
        assert_eq!(err.to_string(), expected);
        assert_eq!(
            locks.holder("orders").await.unwrap().map(|h| h.pid),
            Some(std::process::id())
        );
        // Another pipeline is not affected.
        drop(locks.acquire("users", Wait::No).await.unwrap());
        drop(first);
        assert_eq!(locks.holder("orders").await.unwrap(), None);
        drop(locks.acquire("orders", Wait::No).await.unwrap());
    }

    #[tokio::test]
    async fn waiting_gets_the_lock_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let locks = FileLock::new(dir.path());
        let first = locks.acquire("orders", Wait::No).await.unwrap();
        let released = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(first);
        });
        let started = Instant::now();
        let second = locks
            .acquire("orders", Wait::Up(Duration::from_secs(30)))
            .await;
        assert!(second.is_ok(), "{second:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));
        released.await.unwrap();
        let err = {
            let _held = second.unwrap();
            locks
                .acquire("orders", Wait::Up(Duration::from_millis(300)))
                .await
                .unwrap_err()
        };
        assert!(
            err.to_string()
                .starts_with("pipeline orders is already running (run id not chosen yet, host "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn asking_who_holds_a_lock_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(FileLock::new(&state).holder("orders").await.unwrap(), None);
        assert!(FileLock::existing(&state).is_none());
        assert!(!state.exists());
    }

    #[test]
    fn odd_names_stay_inside_the_lock_folder() {
        assert_eq!(lock_file_name("orders_v2"), "orders_v2.lock");
        let odd = lock_file_name("../x");
        assert!(odd.starts_with("pipeline-") && !odd.contains('/'), "{odd}");
    }
}
