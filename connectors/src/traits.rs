//! The two traits every connector implements.

use std::pin::Pin;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures_util::Stream;
use planner::model::MappedColumn;
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBuckets, Partition, PartitionDimension,
};

use crate::Result;

/// Batches of one partition, in source order.
pub type BatchStream<'a> = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send + 'a>>;

/// Reads a table (or join) as Arrow batches in the destination's schema.
#[async_trait]
pub trait Source: Send {
    /// The columns this source reads, in the destination's order.
    fn columns(&self) -> &[MappedColumn];

    /// Checks that every mapped column can be read, naming any that cannot.
    async fn check(&mut self) -> Result<()>;

    /// Min, max and presence of NULLs for each partition dimension.
    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>>;

    /// [`Source::bounds`] among the rows of `partition` only: a hash
    /// comparison cutting a range by a further column (the next key
    /// column) asks for that column's extent there. Dimensions are named
    /// by their mapped column's destination name. Without a query of its
    /// own, a source reads the partition's rows.
    async fn bounds_within(
        &mut self,
        partition: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>> {
        crate::bounds::bounds_by_reading(self, partition, dims).await
    }

    /// About how many rows the source holds, from what it knows without
    /// counting them (PostgreSQL's statistics); `None` when it cannot say
    /// cheaply. A run asks which ranges hold rows only when there may be
    /// far fewer rows than ranges: on a dense table that question is a
    /// scan of every row that answers "all of them".
    async fn estimated_rows(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Which ranges of `dims` hold rows of `scope` (its ranges and this
    /// source's filters): for each combination of ranges with at least one
    /// row, the bucket of each dimension under its grid (`grids[i]`),
    /// `None` where the value is NULL, and how many rows it holds (a run
    /// merges neighbouring ranges holding few); in no particular order, and cut
    /// short past `limit` combinations (the caller refuses so many). A run
    /// then plans those ranges alone instead of every one of a sparse span.
    /// `None` when this source cannot tell short of having every row read:
    /// every range is planned.
    async fn occupied_buckets(
        &mut self,
        _scope: &Partition,
        _dims: &[PartitionDimension],
        _grids: &[BucketGrid],
        _limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        Ok(None)
    }

    /// Streams the rows of `partition`, at most `page_rows` per batch.
    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>>;

    /// Streams only the rows of `partition` with these keys (unique columns,
    /// destination types). `None` when this source cannot select by key;
    /// the caller then reads the partition and filters.
    async fn read_keys<'a>(
        &'a mut self,
        _partition: &Partition,
        _keys: &RecordBatch,
        _page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        Ok(None)
    }

    /// An aggregate source's groups that `partition`'s rows touch together
    /// with the `listed` ones, every one re-computed whole (a delta with
    /// `track_moves`: the groups rows moved out of). `None` when this
    /// source cannot.
    async fn read_groups<'a>(
        &'a mut self,
        _partition: &Partition,
        _listed: &crate::sql::ListedGroups,
        _page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        Ok(None)
    }

    /// This source's own hashing where its data lives, if it has one. The
    /// hash strategy works without: [`crate::rowhash::checksum`] and its
    /// siblings read the rows and hash them here when this is `None`, with
    /// the same results (the conformance suite holds them equal).
    fn hash_pushdown(&mut self) -> Option<&mut dyn HashPushdown> {
        None
    }
}

/// A source that computes row hashes and checksums where its data lives
/// (PostgreSQL in SQL, SQLite through registered functions): an optional
/// capability of a [`Source`], asked through [`Source::hash_pushdown`].
/// Every answer equals what reading the rows and hashing them in Rust gives
/// ([`crate::rowhash`]).
#[async_trait]
pub trait HashPushdown: Send {
    /// Row count and wrapping sum of the row hashes of `partition`. Equal
    /// checksums mean the partition is in sync.
    async fn checksum(&mut self, partition: &Partition) -> Result<Checksum>;

    /// Streams the unique key columns (in mapping order) plus a final Int64
    /// column `_synchub_row_hash` for every row of `partition`.
    async fn row_hashes<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>>;

    /// Checksums of each non-empty bucket of `partition`, sorted by bucket.
    /// `None` when the rows cannot be grouped by bucket here; the caller
    /// then compares whole partitions.
    async fn bucket_checksums(
        &mut self,
        partition: &Partition,
        buckets: Buckets,
    ) -> Result<Option<Vec<BucketChecksum>>>;

    /// Like `row_hashes`, for the rows of `partition` in the buckets `which`
    /// only. Only called where `bucket_checksums` answered.
    async fn bucket_row_hashes<'a>(
        &'a mut self,
        partition: &Partition,
        buckets: Buckets,
        which: &[i64],
        page_rows: usize,
    ) -> Result<BatchStream<'a>>;
}

/// A partition's rows grouped by the value of one of its integer ranges:
/// bucket `b` holds the rows with `origin + b * width <= value < origin +
/// (b + 1) * width`. Comparing buckets instead of whole partitions narrows a
/// difference to a few dozen rows in one scan, without sending every row's
/// hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// Which of the partition's ranges (an index into `Partition::ranges`).
    pub dim: usize,
    pub origin: i64,
    /// At least 1.
    pub width: i64,
}

/// Count and sum of the row hashes of one bucket.
pub type BucketChecksum = (i64, Checksum);

/// Order-independent fingerprint of a set of rows: see `crate::rowhash`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    /// Sum of the rows' 64-bit hashes, wrapping at 2^64.
    pub sum: u64,
}

/// Identifies the run a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunIdentity {
    pub pipeline: String,
    pub strategy: String,
    pub run_id: String,
    /// The run's sync fingerprint (`planner::SyncFingerprint::run`), written
    /// with every checkpoint: a run under another config never trusts it.
    pub fingerprint: String,
}

/// A committed partition as the destination records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub partition_id: String,
    /// Rows the partition's write staged.
    pub rows: u64,
    /// The fingerprint of the run that wrote it (`None`: written by an older
    /// SyncHub that did not record one).
    pub fingerprint: Option<String>,
    /// `Sink::table_identity` when it was written.
    pub table_identity: Option<String>,
}

/// Whether a destination-side pipeline lock was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    Acquired,
    /// Another session holds it; what the database says of that session.
    Held {
        holder: String,
    },
}

/// What committing one partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteStats {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
}

impl WriteStats {
    pub fn add(&mut self, other: WriteStats) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
    }
}

/// What makes committing one partition idempotent on a destination that is
/// not transactional: the run and the partition. A resumed run keeps its run
/// id, so a partition committed before a crash but not checkpointed comes
/// back under the same token and is recognised. As the destination spells
/// it ([`CommitToken::as_label`]): a Delta `txn` action's app id, a
/// ClickHouse `insert_deduplication_token`, a StarRocks load label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitToken {
    pub run_id: String,
    pub partition_id: String,
}

impl CommitToken {
    pub fn of(run: &RunIdentity, partition: &Partition) -> CommitToken {
        CommitToken {
            run_id: run.run_id.clone(),
            partition_id: partition.id.clone(),
        }
    }

    /// One string for both parts: `synchub:<run id>:<partition id>`. Run
    /// ids hold no `:`, so no two tokens share a label.
    pub fn as_label(&self) -> String {
        format!("synchub:{}:{}", self.run_id, self.partition_id)
    }
}

/// How a partition's rows meet the destination's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Rows may equal the destination's: equal ones are left as they are
    /// and counted unchanged.
    #[default]
    Merge,
    /// The rows are known to differ from the destination's or to be new
    /// (a hash run fetches only such rows; a delta past its watermark,
    /// without lookback, nearly only such rows): the writer may skip
    /// testing which are equal first. An equal row is still never counted
    /// as updated.
    Changes,
    /// As `Merge`, and the rows are every row the table is to hold: the
    /// table's rows whose key is not among them are deleted in the same
    /// commit (a full aggregate run: a group whose source rows are all gone
    /// goes too). Only for a partition without ranges, and only asked of a
    /// writer whose [`Sink::can_replace`] says so.
    Replace,
}

/// What a destination can do, asked instead of assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCapabilities {
    /// A partition's rows and its checkpoint commit in one transaction.
    /// A destination without (ClickHouse, StarRocks, Delta) commits the
    /// rows idempotently under the partition's [`CommitToken`], and the
    /// checkpoint afterwards ([`Sink::record_checkpoint`]).
    pub transactional: bool,
    /// Rows are merged by key.
    pub upsert: bool,
    /// Rows can be deleted by key (the hash strategy's deletes).
    pub delete: bool,
    /// One writer at a time: partitions are written one after another.
    pub single_writer: bool,
}

/// Writes batches into a destination table, one transaction per partition.
#[async_trait]
pub trait Sink: Send {
    /// Creates the table when missing, checks its columns when present, and
    /// creates the checkpoint table.
    async fn prepare(&mut self) -> Result<()>;

    /// Whether the table held no rows when `prepare` ran: nothing there can
    /// be unchanged, so comparing checksums first would be wasted work.
    fn started_empty(&self) -> bool {
        false
    }

    /// The table was empty when the run this writer belongs to started,
    /// as its coordinator found it (after `prepare`, which looked again):
    /// a writer of one of the run's partitions, in another process, writes
    /// as the coordinator's own lanes do, whatever partitions committed
    /// since (they hold other keys). A run resumed over committed rows
    /// started non-empty.
    fn set_started_empty(&mut self, _empty: bool) {}

    /// What this destination can do.
    fn capabilities(&self) -> SinkCapabilities;

    /// Another writer to the table this one prepared, on a connection of
    /// its own, for partitions written at the same time as this writer's
    /// (`max_concurrent_partitions`). Only asked of a destination whose
    /// capabilities are not `single_writer`.
    async fn another_writer(&mut self) -> Result<Option<Box<dyn Sink>>> {
        Ok(None)
    }

    /// What identifies the destination table itself, known once `prepare`
    /// ran. It changes when the table is dropped and created again, and,
    /// where the database can tell, when it is truncated or rewritten: a
    /// checkpoint written under another identity describes rows that may no
    /// longer be there.
    fn table_identity(&self) -> String;

    /// The checkpoints of `run` recorded here, whatever their fingerprint
    /// and table identity; the caller decides which it trusts.
    async fn checkpoints(&mut self, run: &RunIdentity) -> Result<Vec<Checkpoint>>;

    /// Takes a lock on `key` that excludes other SyncHub processes writing
    /// this pipeline into this destination, even from other machines, and
    /// holds it until this writer is dropped. `holder` describes this
    /// process for the message another one gets. Destinations without such
    /// a lock answer `Acquired`: the state directory's lock file is then
    /// the only one.
    async fn try_lock(&mut self, _key: &str, _holder: &str) -> Result<LockAttempt> {
        Ok(LockAttempt::Acquired)
    }

    /// Whether this writer takes [`WriteMode::Replace`].
    fn can_replace(&self) -> bool {
        false
    }

    /// Opens the partition's transaction; its rows are written as `mode`
    /// says.
    async fn begin_partition(&mut self, partition: &Partition, mode: WriteMode) -> Result<()>;

    /// Stages a batch inside the open partition.
    async fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Rolls back the open partition: its rows and checkpoint are not written.
    async fn abort_partition(&mut self) -> Result<()>;

    /// Deletes the rows with these keys (unique columns, destination types)
    /// as part of the open partition; they are gone once it commits.
    async fn delete(&mut self, keys: &RecordBatch) -> Result<()>;

    /// Merges the staged rows into the table and records the checkpoint, in
    /// one transaction: after a crash either both are there or neither.
    ///
    /// A destination that is not `transactional` commits the rows only,
    /// under the partition's [`CommitToken`]: a commit under a token it has
    /// committed before writes nothing (and counts nothing), so a resumed
    /// run that writes a partition again after a crash between this commit
    /// and its checkpoint duplicates no row.
    async fn commit_partition(
        &mut self,
        run: &RunIdentity,
        partition: &Partition,
    ) -> Result<WriteStats>;

    /// Records the checkpoint of the partition `commit_partition` just
    /// committed. Called only on a destination that is not `transactional`
    /// (a transactional one records it in the same commit); the checkpoint
    /// lives in the destination all the same, where `checkpoints` finds it.
    async fn record_checkpoint(
        &mut self,
        _run: &RunIdentity,
        _partition: &Partition,
    ) -> Result<()> {
        Err(crate::ConnectorError::Unsupported(
            "this destination records checkpoints as it commits".into(),
        ))
    }

    /// Input ended with no partition open: every partition given to this
    /// writer is committed, unless upstream failed between two. Only for
    /// work harmless either way, such as refreshing statistics.
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
