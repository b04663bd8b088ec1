//! A SQLite connection on a thread of its own, for the SQLite connector and
//! for the engine's state store alike.
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

use std::marker::PhantomData;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use rusqlite::Connection;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Why a connection's thread could not take a call; each owner turns it
/// into its own error type (`E: From<ThreadFailure>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadFailure {
    #[error("cannot start the {owner} thread: {reason}")]
    Start { owner: &'static str, reason: String },
    /// A call on it panicked; the caller of that call was told already.
    #[error("the {owner} thread ended (an earlier call panicked)")]
    Ended { owner: &'static str },
}

/// What happens when the last handle is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLastDrop {
    /// The thread ends (rolling back any open transaction) on its own
    /// time; nothing waits for it. For connections dropped on async
    /// threads, which must not block.
    Detach,
    /// Wait for the thread to run the calls already sent and close the
    /// connection: the last connection to a WAL database folds the log back
    /// into the file and removes it, which a process exiting first would
    /// leave behind.
    Join,
}

/// The handle to a connection's thread, answering in the owner's errors
/// `E`. Clones share the thread.
pub struct ConnectionThread<E> {
    thread: Arc<Owned>,
    errors: PhantomData<fn() -> E>,
}

impl<E> Clone for ConnectionThread<E> {
    fn clone(&self) -> Self {
        ConnectionThread {
            thread: Arc::clone(&self.thread),
            errors: PhantomData,
        }
    }
}

/// The sending end and the thread, dropped with the last handle.
struct Owned {
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    on_last_drop: OnLastDrop,
    /// Whose thread it is, for messages ("SQLite connection's").
    owner: &'static str,
}

impl Drop for Owned {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let (OnLastDrop::Join, Some(thread)) = (self.on_last_drop, self.thread.take()) {
            // An Err is a call that panicked; its caller was told already.
            let _ = thread.join();
        }
    }
}

impl<E: From<ThreadFailure> + Send + 'static> ConnectionThread<E> {
    /// Starts the thread and opens the connection on it with `open`, which
    /// may block (create files, wait out another process's lock). `owner`
    /// names the thread in messages ("state store's").
    pub async fn open(
        owner: &'static str,
        on_last_drop: OnLastDrop,
        open: impl FnOnce() -> Result<Connection, E> + Send + 'static,
    ) -> Result<ConnectionThread<E>, E> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite".into())
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
            .map_err(|e| ThreadFailure::Start {
                owner,
                reason: e.to_string(),
            })?;
        let handle: ConnectionThread<E> = ConnectionThread {
            thread: Arc::new(Owned {
                jobs: Some(jobs),
                thread: Some(thread),
                on_last_drop,
                owner,
            }),
            errors: PhantomData,
        };
        opened.await.map_err(|_| handle.ended())??;
        Ok(handle)
    }

    /// Runs `f` with the connection, after the calls sent before it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.submit(f)?.outcome().await
    }

    /// Queues `f`, in order with the other calls, and hands back what will
    /// tell its outcome: the caller goes on with other work meanwhile.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<Submitted<T, E>, E> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(move |conn| {
            let _ = tx.send(f(conn));
        })?;
        Ok(Submitted {
            outcome: rx,
            owner: self.thread.owner,
        })
    }

    /// Queues `f` without waiting for it (it reports through channels of
    /// its own, as a streamed read does).
    pub fn spawn(&self, f: impl FnOnce(&mut Connection) + Send + 'static) -> Result<(), E> {
        let sent = match &self.thread.jobs {
            Some(jobs) => jobs.send(Box::new(f)).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.ended())
        }
    }

    fn ended(&self) -> E {
        ThreadFailure::Ended {
            owner: self.thread.owner,
        }
        .into()
    }
}

/// A call queued by [`ConnectionThread::submit`].
pub struct Submitted<T, E> {
    outcome: tokio::sync::oneshot::Receiver<Result<T, E>>,
    owner: &'static str,
}

impl<T, E: From<ThreadFailure>> Submitted<T, E> {
    /// The call's outcome if it has run, without waiting.
    pub fn try_outcome(&mut self) -> Option<Result<T, E>> {
        use tokio::sync::oneshot::error::TryRecvError;
        match self.outcome.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => {
                Some(Err(E::from(ThreadFailure::Ended { owner: self.owner })))
            }
        }
    }

    /// Waits for the call to have run; its result, or why it could not run.
    pub async fn outcome(self) -> Result<T, E> {
        let owner = self.owner;
        self.outcome
            .await
            .map_err(|_| E::from(ThreadFailure::Ended { owner }))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct TestError(String);

    impl From<ThreadFailure> for TestError {
        fn from(e: ThreadFailure) -> TestError {
            TestError(e.to_string())
        }
    }

    impl From<rusqlite::Error> for TestError {
        fn from(e: rusqlite::Error) -> TestError {
            TestError(e.to_string())
        }
    }

    async fn open(
        path: std::path::PathBuf,
        on_last_drop: OnLastDrop,
    ) -> ConnectionThread<TestError> {
        ConnectionThread::open("test's", on_last_drop, move || Ok(Connection::open(path)?))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn calls_run_in_order_and_a_panic_ends_the_thread_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path().join("t.db"), OnLastDrop::Detach).await;
        conn.run(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .unwrap();
        // Queued without waiting, then a call that sees its effect.
        conn.spawn(|c| {
            c.execute("INSERT INTO t VALUES (7)", []).unwrap();
        })
        .unwrap();
        let insert = conn.run(|c| Ok(c.execute("INSERT INTO t VALUES (8)", [])?));
        let select = conn.run(|c| Ok(c.query_row("SELECT sum(x) FROM t", [], |r| r.get(0))?));
        // Sent in this order, answered in this order.
        let (inserted, sum) = tokio::join!(insert, select);
        assert_eq!((inserted.unwrap(), sum.unwrap()), (1, 15i64));

        let panicked = conn
            .run(|_| -> Result<(), TestError> { panic!("a bug") })
            .await;
        let after = conn.clone().run(|_| Ok(())).await;
        for result in [panicked, after] {
            assert_eq!(
                result.unwrap_err().0,
                "the test's thread ended (an earlier call panicked)"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_open_is_the_openers_error() {
        let opened = ConnectionThread::<TestError>::open("test's", OnLastDrop::Detach, || {
            Err(TestError("no such file".into()))
        })
        .await;
        assert_eq!(opened.err().unwrap().0, "no such file");
    }

    #[tokio::test]
    async fn joining_on_the_last_drop_closes_the_connection_first() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path().join("t.db"), OnLastDrop::Join).await;
        conn.run(|c| {
            c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?)
        })
        .await
        .unwrap();
        let wal = dir.path().join("t.db-wal");
        assert!(wal.exists());
        let other = conn.clone();
        drop(conn);
        // Another handle keeps the thread and its connection.
        assert!(wal.exists());
        drop(other);
        assert!(!wal.exists());
    }
}
