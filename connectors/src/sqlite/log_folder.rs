//! Folding a SQLite destination's write-ahead log back into its file on a
//! connection of its own, beside the writer.
//!
//! A checkpoint copies the log's pages into the database file and waits for
//! the disk twice. Left automatic, it runs on the writer's thread at each
//! commit past 1,000 pages, and the writer (the longer of a load's two busy
//! threads) stands still meanwhile. Here the writer commits without
//! checkpointing and a second connection checkpoints behind it, passively:
//! it never blocks the writer or a reader.
//!
//! The log starts over from its beginning only when a transaction begins
//! with every committed page folded in. A writer that never pauses would
//! grow it to the size of the whole load, so after [`RESTART_AFTER_BYTES`]
//! of writes the next transaction waits for the folding to catch up.

use std::path::Path;

use super::connect::open_on_thread;
use super::thread::{ConnectionThread, Submitted};
use crate::{ConnectorError, Result};

/// Bytes written (as Arrow batches, a proxy for the log's pages) after
/// which a transaction waits for the log to be folded in and start over.
const RESTART_AFTER_BYTES: usize = 64 << 20;

pub(super) struct LogFolder {
    conn: ConnectionThread<ConnectorError>,
    /// The checkpoint started after the last commit, while it runs.
    running: Option<Submitted<(), ConnectorError>>,
    written_since_restart: usize,
    restart_after: usize,
}

impl LogFolder {
    /// A second connection to the destination at `path`.
    pub(super) async fn open(path: &Path) -> Result<LogFolder> {
        Ok(LogFolder {
            conn: open_on_thread(path, true).await?,
            running: None,
            written_since_restart: 0,
            restart_after: RESTART_AFTER_BYTES,
        })
    }

    pub(super) fn wrote(&mut self, bytes: usize) {
        self.written_since_restart = self.written_since_restart.saturating_add(bytes);
    }

    /// After a commit: folds in what is committed, unless the last
    /// checkpoint still runs (the next commit's will take these pages too).
    pub(super) fn after_commit(&mut self) -> Result<()> {
        if let Some(running) = self.running.as_mut() {
            match running.try_outcome() {
                None => return Ok(()),
                Some(outcome) => {
                    self.running = None;
                    warn_failed(outcome);
                }
            }
        }
        self.running = Some(self.conn.submit(checkpoint)?);
        Ok(())
    }

    /// Before a transaction: once enough was written, waits for the log to
    /// be folded in entirely, so that this transaction writes it from its
    /// start again.
    pub(super) async fn before_begin(&mut self) -> Result<()> {
        if self.written_since_restart < self.restart_after {
            return Ok(());
        }
        self.fold_all().await?;
        self.written_since_restart = 0;
        Ok(())
    }

    /// Every committed page folded in, waited for, so that the run leaves
    /// the file whole; at the end of a load the log is also emptied, or the
    /// next run's first opener would read all of it back to rebuild its
    /// index (a load leaves up to 64 MB there).
    pub(super) async fn fold_all(&mut self) -> Result<()> {
        if let Some(running) = self.running.take() {
            warn_failed(running.outcome().await);
        }
        self.conn.run(checkpoint).await
    }

    /// [`fold_all`](Self::fold_all), then the log file truncated to nothing
    /// if no reader holds an older snapshot (it never waits for one).
    pub(super) async fn fold_all_and_empty(&mut self) -> Result<()> {
        self.fold_all().await?;
        self.conn
            .run(|conn| {
                // TRUNCATE waits out readers through the busy handler: none.
                conn.busy_timeout(std::time::Duration::ZERO)?;
                let emptied = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                conn.busy_timeout(std::time::Duration::from_secs(30))?;
                Ok(emptied?)
            })
            .await
    }
}

/// A passive checkpoint: as many committed pages as no reader still needs.
fn checkpoint(conn: &mut rusqlite::Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// A checkpoint in the background that failed leaves the pages in the log,
/// where readers find them: nothing is lost, and the next one tries again.
fn warn_failed(outcome: Result<()>) {
    if let Err(e) = outcome {
        tracing::warn!("folding the SQLite destination's write-ahead log in failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_starts_over_once_enough_was_written_and_ends_folded_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let writer = open_on_thread(&path, true).await.unwrap();
        writer
            .run(|c| Ok(c.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v BLOB)")?))
            .await
            .unwrap();
        let mut folder = LogFolder::open(&path).await.unwrap();
        folder.restart_after = 1 << 20;
        // 40 transactions of 64 rows of 4,000 bytes: 10 MB of log, were it
        // never to start over.
        for _ in 0..40 {
            folder.before_begin().await.unwrap();
            writer
                .run(|c| {
                    Ok(c.execute_batch(
                        "BEGIN; WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 64) \
                         INSERT INTO t SELECT randomblob(4000) FROM s; COMMIT",
                    )?)
                })
                .await
                .unwrap();
            folder.wrote(64 * 4000);
            folder.after_commit().unwrap();
        }
        folder.fold_all().await.unwrap();
        let log = std::fs::metadata(dir.path().join("d.db-wal"))
            .unwrap()
            .len();
        // At most five transactions between two starts over, and their pages.
        assert!(log < 3 << 20, "the log grew to {log} bytes");
        // Every row is in the database file itself, not only in the log.
        let file = std::fs::metadata(&path).unwrap().len();
        assert!(file >= 40 * 64 * 4000, "the file holds {file} bytes");
        let rows: i64 = writer
            .run(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 40 * 64);
    }
}
