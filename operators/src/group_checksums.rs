//! An aggregate's hash strategy: a partition's source rows are compared
//! with its groups as the destination holds them, by checksum. Each group
//! stores the wrapping sum of its source rows' hashes (`hash_key`,
//! `StoredHash::GroupSum`), so the groups of a range sum to the checksum of
//! the source rows in it whatever rows were added, changed, deleted or
//! moved to another group. Only the ranges whose sums differ are
//! re-computed, whole, with the keys of the groups the destination holds
//! there: a group no source row makes any more is deleted
//! ([`crate::group_deletes`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use connectors::rowhash;
use connectors::{Checksum, Source};
use futures_util::StreamExt;
use planner::partition::{Partition, PartitionDimension};
use planner::ColumnRef;

use crate::message::{ChangeSet, Message};
use crate::operator::{name_null_key, Operator, Output, Result};

pub struct GroupChecksums {
    /// The source's rows, hashed over the columns the group-by reads.
    rows: Box<dyn Source>,
    /// The destination's groups, with their stored checksums.
    destination: Box<dyn Source>,
    /// The destination's key columns (its unique columns, in order).
    key_schema: SchemaRef,
    /// Destination key columns of type `date`: a range over one is bound
    /// as days.
    date_keys: Vec<String>,
    /// Finer cuts of a differing partition with more rows than `leaf_rows`.
    secondary: Vec<PartitionDimension>,
    leaf_rows: u64,
    page_rows: usize,
}

impl GroupChecksums {
    pub fn new(
        rows: Box<dyn Source>,
        destination: Box<dyn Source>,
        key_schema: SchemaRef,
        date_keys: Vec<String>,
        page_rows: usize,
    ) -> Self {
        GroupChecksums {
            rows,
            destination,
            key_schema,
            date_keys,
            secondary: Vec::new(),
            leaf_rows: u64::MAX,
            page_rows,
        }
    }

    /// Cut a differing partition of more than `leaf_rows` source rows by
    /// `secondary` (the strategy's `secondary_partitions`) and re-compute
    /// only the pieces that differ.
    pub fn with_secondary(mut self, secondary: Vec<PartitionDimension>, leaf_rows: u64) -> Self {
        self.secondary = secondary;
        self.leaf_rows = leaf_rows;
        self
    }

    /// The same ranges over the destination's key columns (the planner
    /// names each dimension as the key it is a range of).
    fn for_destination(&self, p: &Partition) -> Partition {
        let mut dp = p.clone();
        for (dim, _) in &mut dp.ranges {
            dim.column = ColumnRef::bare(&dim.name);
            dim.date_only = self.date_keys.contains(&dim.name);
        }
        dp
    }

    /// The source rows' checksum and the destination groups' (their stored
    /// sums; `rows` there counts groups), both at once.
    async fn checksums(&mut self, p: &Partition) -> Result<(Checksum, Checksum)> {
        let dp = self.for_destination(p);
        let (s, d) = tokio::join!(
            rowhash::checksum(self.rows.as_mut(), p),
            rowhash::checksum(self.destination.as_mut(), &dp)
        );
        Ok((s?, d?))
    }

    /// The keys of the groups the destination holds in `p`.
    async fn destination_groups(&mut self, p: &Partition) -> Result<RecordBatch> {
        let dp = self.for_destination(p);
        let keys = self.key_schema.fields().len();
        let mut batches =
            rowhash::row_hashes(self.destination.as_mut(), &dp, self.page_rows).await?;
        let mut parts = Vec::new();
        while let Some(batch) = batches.next().await {
            parts.push(batch?.project(&(0..keys).collect::<Vec<_>>())?);
        }
        Ok(arrow::compute::concat_batches(&self.key_schema, &parts)?)
    }

    /// What a range re-computed whole is sent with.
    async fn recompute(&mut self, p: &Partition) -> Result<ChangeSet> {
        let empty = RecordBatch::new_empty(self.key_schema.clone());
        Ok(ChangeSet {
            all_rows: true,
            unchanged: 0,
            upserts: empty.clone(),
            deletes: empty,
            destination_groups: Some(self.destination_groups(p).await?),
        })
    }

    /// The pieces of differing `p` to re-compute: `p` itself, or with more
    /// than `leaf_rows` source rows, those of its finer ranges whose sums
    /// differ.
    async fn differing_pieces(&mut self, p: &Partition, rows: u64) -> Result<Vec<Partition>> {
        if rows <= self.leaf_rows || self.secondary.is_empty() {
            return Ok(vec![p.clone()]);
        }
        let pieces = p.split_by(&self.secondary);
        if pieces.len() <= 1 {
            return Ok(vec![p.clone()]);
        }
        let mut differing = Vec::new();
        for piece in pieces {
            let (s, d) = self.checksums(&piece).await?;
            if s.sum != d.sum {
                differing.push(piece);
            }
        }
        Ok(differing)
    }

    async fn compare(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        let (s, d) = self.checksums(&p).await?;
        let empty = RecordBatch::new_empty(self.key_schema.clone());
        // Groups found equal by checksum are not counted unchanged: an
        // aggregate run counts the groups it re-computed (inserted,
        // updated, or found equal when written).
        let nothing = ChangeSet {
            all_rows: false,
            unchanged: 0,
            upserts: empty.clone(),
            deletes: empty.clone(),
            destination_groups: None,
        };
        // Only the sums compare: the source counts rows, the destination
        // groups.
        if s.sum == d.sum {
            out.send(Message::PartitionStart(p)).await?;
            return out.changes(Arc::new(nothing)).await;
        }
        let pieces = self.differing_pieces(&p, s.rows).await?;
        let mut own = nothing;
        for piece in pieces {
            let changes = self.recompute(&piece).await?;
            if piece.id == p.id {
                own = changes;
                continue;
            }
            // Each piece commits on its own; `p`'s checkpoint, last, says
            // they all have.
            let piece = Arc::new(piece);
            out.send(Message::PartitionStart(piece.clone())).await?;
            out.changes(Arc::new(changes)).await?;
            out.send(Message::PartitionEnd(piece)).await?;
        }
        out.send(Message::PartitionStart(p)).await?;
        out.changes(Arc::new(own)).await
    }
}

#[async_trait]
impl Operator for GroupChecksums {
    fn name(&self) -> &'static str {
        "group_checksums"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        let id = p.id.clone();
        self.compare(p, out)
            .await
            .map_err(|e| name_null_key(e, &id, None))
    }
}
