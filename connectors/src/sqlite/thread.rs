//! A SQLite connection on a thread of its own.
//!
//! rusqlite's `Connection` blocks, so its calls cannot run on the async
//! threads. Each connection gets one OS thread that owns it and runs the
//! calls sent to it in order, rather than taking turns on tokio's blocking
//! pool behind a mutex: a pool hands successive calls to whichever of its
//! threads is idle, and glibc's malloc keeps an arena per thread and what
//! is freed in it, so a full sync of 4M rows held 147 MB at its peak where
//! 1M rows held 100 MB. On one thread per connection the memory stays put.
//!
//! tokio-rusqlite does the same, but only through async calls, whose
//! message is sent when the future is first polled: a streamed read must be
//! queued at once, in order with the calls after it, and must report a
//! closed connection into its own channel rather than end as if empty.

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

#[cfg(test)]
mod tests {
    use super::ConnectionThread;

    #[tokio::test]
    async fn calls_run_in_order_and_a_panic_ends_the_thread_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let conn = ConnectionThread::open(&dir.path().join("t.db"), true)
            .await
            .unwrap();
        conn.run(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .unwrap();
        // Queued without waiting, then a call that sees its effect.
        conn.spawn(|c| {
            c.execute("INSERT INTO t VALUES (7)", []).unwrap();
        })
        .unwrap();
        let x: i64 = conn
            .run(|c| Ok(c.query_row("SELECT x FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(x, 7);

        let panicked = conn.run(|_| -> crate::Result<()> { panic!("a bug") }).await;
        let after = conn.run(|_| Ok(())).await;
        for result in [panicked, after] {
            assert_eq!(
                result.unwrap_err().to_string(),
                "the SQLite connection's thread ended (an earlier call panicked)"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_source_file_is_reported_by_open() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let err = ConnectionThread::open(&missing, false).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("SQLite database {} does not exist", missing.display())
        );
    }
}
