use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use connectors::{RunIdentity, Sink, WriteMode, WriteStats};
use planner::partition::Partition;

use crate::message::ChangeSet;
use crate::operator::{Operator, OperatorError, Output, Result};
use crate::progress::RunProgress;

/// Test-only fault injection, compiled only with the `fault-injection`
/// feature (the test command's build of the CLI; a normal build has none of
/// it and reads no test variables). From `SYNCHUB_TEST_CRASH=<point>:<n>`
/// the process aborts at the n-th partition of this run, `before_commit`
/// (rows written, transaction open), `before_checkpoint` (a destination
/// that is not transactional: rows committed under their token, checkpoint
/// not yet recorded) or `after_commit` (committed in the destination, not
/// yet in the state store); crash tests use it to prove a
/// killed run resumes with nothing lost and nothing duplicated. From
/// `SYNCHUB_TEST_SLOW_COMMIT_MS` it pauses after each commit, so a test can
/// kill a run mid-way or make two runs meet.
#[cfg(feature = "fault-injection")]
mod fault {
    use planner::partition::Partition;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum CrashPoint {
        BeforeCommit(u64),
        BeforeCheckpoint(u64),
        AfterCommit(u64),
    }

    impl CrashPoint {
        fn from_env() -> Option<CrashPoint> {
            let v = std::env::var("SYNCHUB_TEST_CRASH").ok()?;
            let (point, n) = v.split_once(':')?;
            let n = n.parse().ok()?;
            match point {
                "before_commit" => Some(CrashPoint::BeforeCommit(n)),
                "before_checkpoint" => Some(CrashPoint::BeforeCheckpoint(n)),
                "after_commit" => Some(CrashPoint::AfterCommit(n)),
                _ => None,
            }
        }
    }

    fn crash_now(why: &str) -> ! {
        eprintln!("SYNCHUB_TEST_CRASH: aborting {why}");
        std::process::abort()
    }

    pub(super) struct Faults {
        crash: Option<CrashPoint>,
        slow_commit: Option<std::time::Duration>,
        partitions_seen: u64,
    }

    impl Faults {
        pub(super) fn from_env() -> Faults {
            Faults {
                crash: CrashPoint::from_env(),
                slow_commit: std::env::var("SYNCHUB_TEST_SLOW_COMMIT_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .map(std::time::Duration::from_millis),
                partitions_seen: 0,
            }
        }

        /// A partition's rows are written, its transaction still open.
        pub(super) fn before_commit(&mut self, p: &Partition) {
            self.partitions_seen += 1;
            if self.crash == Some(CrashPoint::BeforeCommit(self.partitions_seen)) {
                crash_now(&format!("before committing partition {}", p.id));
            }
        }

        /// Rows committed under their token, checkpoint not recorded.
        pub(super) fn before_checkpoint(&self, p: &Partition) {
            if self.crash == Some(CrashPoint::BeforeCheckpoint(self.partitions_seen)) {
                crash_now(&format!("after committing the rows of partition {}", p.id));
            }
        }

        /// Committed in the destination, not yet in the state store.
        pub(super) fn after_commit(&self, p: &Partition) {
            if self.crash == Some(CrashPoint::AfterCommit(self.partitions_seen)) {
                crash_now(&format!("after committing partition {}", p.id));
            }
        }

        /// After the commit hook.
        pub(super) async fn pause(&self) {
            if let Some(pause) = self.slow_commit {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Called after a partition and its checkpoint are committed.
pub type CommitHook = Box<dyn FnMut(&Partition, WriteStats) -> Result<()> + Send>;

/// Writes each partition into the destination in one transaction together
/// with its checkpoint; into a destination that is not transactional, its
/// rows under the partition's commit token, then its checkpoint. A crash
/// between the two leaves rows without a checkpoint: the resumed run (same
/// run id, so same token) writes the partition again, and the destination
/// recognises the token and writes nothing twice.
pub struct Populate {
    sink: Box<dyn Sink>,
    /// Whether rows and checkpoint commit together (`SinkCapabilities`).
    transactional: bool,
    run: RunIdentity,
    progress: Arc<RunProgress>,
    on_commit: CommitHook,
    mode: WriteMode,
    /// The partition whose transaction is open, if any.
    open: Option<Arc<Partition>>,
    /// Rows of the open partition found identical upstream, unfetched.
    unchanged_upstream: u64,
    #[cfg(feature = "fault-injection")]
    faults: fault::Faults,
}

impl Populate {
    /// `mode`: how every partition's rows meet the destination's.
    pub fn new(
        sink: Box<dyn Sink>,
        mode: WriteMode,
        run: RunIdentity,
        progress: Arc<RunProgress>,
        on_commit: CommitHook,
    ) -> Self {
        Populate {
            transactional: sink.capabilities().transactional,
            sink,
            mode,
            run,
            progress,
            on_commit,
            open: None,
            unchanged_upstream: 0,
            #[cfg(feature = "fault-injection")]
            faults: fault::Faults::from_env(),
        }
    }
}

#[async_trait]
impl Operator for Populate {
    fn name(&self) -> &'static str {
        "populate"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, _out: &mut Output) -> Result<()> {
        self.sink.begin_partition(&p, self.mode).await?;
        self.open = Some(p);
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        self.sink.write(&batch).await?;
        RunProgress::add(&self.progress.rows_written, batch.num_rows() as u64);
        Ok(())
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, _out: &mut Output) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        self.faults.before_commit(&p);
        let mut stats = self
            .sink
            .commit_partition(&self.run, &p)
            .await
            .map_err(OperatorError::from)?;
        if !self.transactional {
            #[cfg(feature = "fault-injection")]
            self.faults.before_checkpoint(&p);
            self.sink
                .record_checkpoint(&self.run, &p)
                .await
                .map_err(OperatorError::from)?;
        }
        stats.unchanged += std::mem::take(&mut self.unchanged_upstream);
        self.open = None;
        RunProgress::add(&self.progress.rows_inserted, stats.inserted);
        RunProgress::add(&self.progress.rows_updated, stats.updated);
        RunProgress::add(&self.progress.rows_unchanged, stats.unchanged);
        RunProgress::add(&self.progress.rows_deleted, stats.deleted);
        RunProgress::add(&self.progress.partitions_done, 1);
        self.progress.partition_committed();
        #[cfg(feature = "fault-injection")]
        self.faults.after_commit(&p);
        (self.on_commit)(&p, stats)?;
        #[cfg(feature = "fault-injection")]
        self.faults.pause().await;
        Ok(())
    }

    async fn on_unchanged(&mut self, rows: u64, _out: &mut Output) -> Result<()> {
        self.unchanged_upstream += rows;
        Ok(())
    }

    /// A change set reaching the writer was for the operators before it
    /// (`GroupDeletes`); what it asked for arrives as rows and deletes.
    async fn on_changes(&mut self, _changes: Arc<ChangeSet>, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    async fn on_delete(&mut self, keys: RecordBatch, _out: &mut Output) -> Result<()> {
        self.sink.delete(&keys).await?;
        Ok(())
    }

    /// Input ended inside a partition (upstream failed): that partition is
    /// incomplete, so it is rolled back rather than committed. Otherwise
    /// every partition is in, and the sink hears so.
    async fn on_finish(&mut self, _out: &mut Output) -> Result<()> {
        self.unchanged_upstream = 0;
        if let Some(p) = self.open.take() {
            tracing::warn!(partition = %p.id, "input ended mid-partition; rolling it back");
            self.sink.abort_partition().await?;
            return Ok(());
        }
        self.sink.finish().await?;
        Ok(())
    }
}
