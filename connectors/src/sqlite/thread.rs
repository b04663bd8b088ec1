//! A SQLite connection on a thread of its own.
//!
//! rusqlite's `Connection` blocks, so its calls cannot run on the async
//! threads. Each connection gets one OS thread that owns it and runs the
//! calls sent to it in order, rather than taking turns on tokio's blocking
//! pool behind a mutex: a pool hands successive calls to whichever of its
//! threads is idle, and glibc's malloc keeps an arena per thread and what
//! is freed in it, so a full sync of 4M rows held 147 MB at its peak where
//! 1M rows held 100 MB. On one thread per connection the memory stays put.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

use crate::{ConnectorError, Result};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The handle to a connection's thread; the thread (and the connection,
/// rolling back any open transaction) ends when the last handle is dropped.
#[derive(Clone)]
pub struct ConnectionThread {
    jobs: mpsc::Sender<Job>,
}

impl ConnectionThread {
    /// Opens `path` (see `open_connection`) on a new thread.
    pub async fn open(path: &Path, create: bool) -> Result<ConnectionThread> {
        let path = path.to_path_buf();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || {
                let mut conn = match super::open_connection(&path, create) {
                    Ok(conn) => {
                        let _ = opened_tx.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| ConnectorError::Other(format!("cannot start a SQLite thread: {e}")))?;
        opened.await.map_err(|_| ended())??;
        Ok(ConnectionThread { jobs })
    }

    /// Runs `f` with the connection, after the calls sent before it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(move |conn| {
            let _ = tx.send(f(conn));
        })?;
        rx.await.map_err(|_| ended())?
    }

    /// Queues `f` without waiting for it (it reports through channels of
    /// its own, as a streamed read does).
    pub fn spawn(&self, f: impl FnOnce(&mut Connection) + Send + 'static) -> Result<()> {
        self.jobs.send(Box::new(f)).map_err(|_| ended())
    }
}

/// The thread is gone: a call on it panicked.
fn ended() -> ConnectorError {
    ConnectorError::Other("the SQLite connection's thread ended (an earlier call panicked)".into())
}
