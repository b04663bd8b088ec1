//! The state store's SQLite connection on a thread of its own.
//!
//! rusqlite's `Connection` blocks, so its calls cannot run on the async
//! threads. One OS thread owns the connection and runs the calls sent to it
//! in order, each answering through a oneshot channel; the run's tasks await
//! the answer instead of taking turns on the connection behind a mutex. The
//! SQLite connector does the same (`connectors::sqlite::thread`); this copy
//! answers in the store's own errors and closes the connection before the
//! handle is gone.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::Failure;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The handle to the connection's thread.
pub(super) struct ConnectionThread {
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectionThread {
    /// Starts the thread and opens the connection on it with `open`, which
    /// may block (create files, wait out another process's lock).
    pub(super) async fn open(
        open: impl FnOnce() -> Result<Connection, Failure> + Send + 'static,
    ) -> Result<ConnectionThread, Failure> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("synchub-state".into())
            .spawn(move || {
                let mut conn = match open() {
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
            .map_err(|e| Failure::new(format!("cannot start the state store's thread: {e}")))?;
        let this = ConnectionThread {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        opened.await.map_err(|_| ended())??;
        Ok(this)
    }

    /// Runs `f` with the connection, after the calls sent before it.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs
            .as_ref()
            .ok_or_else(ended)?
            .send(job)
            .map_err(|_| ended())?;
        rx.await.map_err(|_| ended())?
    }
}

impl Drop for ConnectionThread {
    /// Ends the thread and waits for it to close the connection (after the
    /// calls already sent). The last connection to close folds the
    /// write-ahead log back into the file and removes it: a process that
    /// exited first would leave `state.db-wal` and `-shm` behind.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // An Err is a call that panicked; its caller was told already.
            let _ = thread.join();
        }
    }
}

/// The thread is gone: a call on it panicked.
fn ended() -> Failure {
    Failure::new("the state store's thread ended (an earlier call panicked)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_in_order_and_a_panic_ends_the_thread_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = ConnectionThread::open(move || Ok(Connection::open(path)?))
            .await
            .unwrap();
        conn.run(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .unwrap();
        let insert = conn.run(|c| Ok(c.execute("INSERT INTO t VALUES (7)", [])?));
        let select = conn.run(|c| Ok(c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))?));
        // Sent in this order, answered in this order.
        let (inserted, x) = tokio::join!(insert, select);
        assert_eq!((inserted.unwrap(), x.unwrap()), (1, 7));

        let panicked = conn
            .run(|_| -> Result<(), Failure> { panic!("a bug") })
            .await;
        let after = conn.run(|_| Ok(())).await;
        for result in [panicked, after] {
            assert_eq!(
                result.unwrap_err().to_string(),
                "the state store's thread ended (an earlier call panicked)"
            );
        }
    }

    #[tokio::test]
    async fn dropping_the_handle_closes_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = ConnectionThread::open({
            let path = path.clone();
            move || Ok(Connection::open(path)?)
        })
        .await
        .unwrap();
        conn.run(|c| {
            c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?)
        })
        .await
        .unwrap();
        assert!(dir.path().join("t.db-wal").exists());
        drop(conn);
        assert!(!dir.path().join("t.db-wal").exists());
    }
}
