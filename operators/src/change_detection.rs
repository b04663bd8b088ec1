//! Hash change detection: compare partition checksums on both sides; where
//! a partition differs, compare the checksums of its buckets (a few dozen
//! rows each, in one grouped scan per side), then the row hashes of the
//! differing buckets by key, to find exactly which rows to insert, update
//! or delete. Sources that cannot group by bucket bisect the partition down
//! to a small range and compare its row hashes instead.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use async_trait::async_trait;
use connectors::rowhash;
use connectors::{BatchStream, Buckets, Checksum, Source};
use futures_util::StreamExt;
use itertools::{EitherOrBoth, Itertools};
use planner::partition::{
    dimension_ranges, DimRange, Partition, PartitionDimension, PartitionDimensionRef,
    PartitionValue, Step,
};
use planner::types::PartitionKind;
use planner::ColumnRef;

use crate::message::{ChangeSet, Message};
use crate::operator::{name_null_key, Operator, OperatorError, Output, Result};

pub struct ChangeDetection {
    source: Box<dyn Source>,
    /// The destination table, read through a source connector.
    destination: Box<dyn Source>,
    /// Bisect while a range holds more rows than this.
    leaf_rows: u64,
    delete_missing: bool,
    /// Schema of the key columns (destination types), for change sets.
    key_schema: SchemaRef,
    page_rows: usize,
    /// Finer cuts tried first when a primary partition differs.
    secondary: Vec<PartitionDimension>,
    /// Full strategy over a populated destination: partitions with equal
    /// checksums are skipped, the others are rewritten whole (no row-level
    /// comparison, no deletes).
    partitions_only: bool,
    /// What the partitions compared so far looked like, to choose between
    /// checksum-first and straight-to-row-hashes for the next one.
    seen: PartitionHistory,
    /// Whether both sides group rows by bucket; `None` until asked.
    bucketing: Option<bool>,
    /// The integer key columns in key order (source side): a differing
    /// range that cannot be cut further is cut by the first of them it
    /// has no range on.
    key_dims: Vec<PartitionDimensionRef>,
}

/// Rows a bucket is sized to hold: small enough that a few changed rows
/// spread over a partition bring back few rows, large enough that the
/// bucket checksums are a small fraction of the partition's rows.
const BUCKET_ROWS: u64 = 64;

/// A differing range holding more rows than this, that no range of its
/// own can cut, is cut by the next key column rather than compared whole:
/// a few more queries a side cost less than reading its every row hash.
const FINER_KEY_ROWS: u64 = 16 * BUCKET_ROWS;

/// Counts of the primary partitions compared so far.
#[derive(Debug, Default, Clone, Copy)]
struct PartitionHistory {
    compared: u64,
    differing: u64,
    rows: u64,
}

impl PartitionHistory {
    fn record(&mut self, differing: bool, rows: u64) {
        self.compared += 1;
        self.differing += u64::from(differing);
        self.rows += rows;
    }

    /// Whether to compare the next partition without its checksum first:
    /// when most partitions so far differed, the checksum mostly costs a
    /// scan that the finer comparison repeats anyway. By buckets
    /// (`bucketed`) any partition can be compared in pieces; by row hashes
    /// only one small enough to compare by key in memory. (Buckets first
    /// for every partition would save that scan where partitions differ
    /// but cost 6-9% more where they do not: the checksum runs in parallel
    /// workers, the grouped scan mostly not.) One differing partition is
    /// enough to try: were it the only one, the next costs a grouped scan
    /// instead of a checksum once, and one equal partition of two turns
    /// checksums back on.
    fn skip_checksum(&self, leaf_rows: u64, bucketed: bool) -> bool {
        self.differing * 2 > self.compared && (bucketed || self.rows / self.compared <= leaf_rows)
    }

    /// The mean rows of a partition so far.
    fn mean_rows(&self) -> u64 {
        self.rows.checked_div(self.compared).unwrap_or(0)
    }
}

impl ChangeDetection {
    /// Cut a differing primary partition along these finer steps before
    /// halving (the strategy's `secondary_partitions`).
    pub fn with_secondary(mut self, secondary: Vec<PartitionDimension>) -> Self {
        self.secondary = secondary;
        self
    }

    pub fn new(
        source: Box<dyn Source>,
        destination: Box<dyn Source>,
        key_schema: SchemaRef,
        leaf_rows: u64,
        delete_missing: bool,
        page_rows: usize,
    ) -> Self {
        let key_dims = source
            .columns()
            .iter()
            .filter(|c| {
                c.unique && c.spec.data_type.partitionable() == Some(PartitionKind::Integer)
            })
            .map(|c| PartitionDimensionRef {
                name: c.dest.clone(),
                column: c.source_ref.clone(),
                kind: PartitionKind::Integer,
                date_only: false,
            })
            .collect();
        ChangeDetection {
            key_dims,
            source,
            destination,
            leaf_rows: leaf_rows.max(1),
            delete_missing,
            key_schema,
            page_rows,
            secondary: Vec::new(),
            partitions_only: false,
            seen: PartitionHistory::default(),
            bucketing: None,
        }
    }

    /// Skip equal partitions and rewrite the others whole (full strategy).
    pub fn partitions_only(mut self) -> Self {
        self.partitions_only = true;
        self
    }

    async fn checksums(&mut self, p: &Partition) -> Result<(Checksum, Checksum)> {
        // Two connections: both sides scan at the same time.
        let dp = for_destination(p);
        let (s, d) = tokio::join!(
            rowhash::checksum(self.source.as_mut(), p),
            rowhash::checksum(self.destination.as_mut(), &dp)
        );
        Ok((s?, d?))
    }

    /// Whole-row checksums computed here from both sides' rows as read.
    /// Binary reads and a fast in-process hash beat hashing in SQL when the
    /// databases are close; both sides are hashed in this process, so the
    /// hash only has to agree with itself (`rowhash::row_encoding_checksum`).
    async fn checksums_by_reading(&mut self, p: &Partition) -> Result<(Checksum, Checksum)> {
        let dp = for_destination(p);
        let page_rows = self.page_rows;
        let (s, d) = tokio::join!(
            rowhash::row_encoding_checksum(self.source.as_mut(), p, page_rows),
            rowhash::row_encoding_checksum(self.destination.as_mut(), &dp, page_rows)
        );
        Ok((s?, d?))
    }

    /// The leaves of `p` whose rows differ, each with its change set, and
    /// the rows of `p` found equal outside those leaves (by checksum).
    async fn differing_leaves(
        &mut self,
        p: &Partition,
    ) -> Result<(Vec<(Partition, ChangeSet)>, u64)> {
        let mut out = Vec::new();
        let mut equal_rows = 0;
        let mut stack = Vec::new();
        // Not with secondary partitions: the configuration asks for their
        // pieces to be compared first.
        let bucketed = self.secondary.is_empty()
            && self.bucketing != Some(false)
            && buckets_for(p, 1).is_some();
        let found = if self.seen.skip_checksum(self.leaf_rows, bucketed) && bucketed {
            self.compare_buckets(p, self.seen.mean_rows()).await?
        } else {
            None
        };
        match found {
            Some(found) => {
                self.seen.record(
                    !found.leaves.is_empty() || !found.too_big.is_empty(),
                    found.source_rows,
                );
                out.extend(found.leaves);
                equal_rows += found.equal_rows;
                stack.extend(found.too_big.into_iter().rev());
            }
            None if self.seen.skip_checksum(self.leaf_rows, false) => {
                let changes = self.compare_rows(p, None).await?;
                let differs = changes.upserts.num_rows() > 0 || changes.deletes.num_rows() > 0;
                self.seen.record(
                    differs,
                    changes.unchanged + changes.upserts.num_rows() as u64,
                );
                return Ok(if differs {
                    (vec![(p.clone(), changes)], 0)
                } else {
                    (Vec::new(), changes.unchanged)
                });
            }
            None => stack.push(p.clone()),
        }
        while let Some(part) = stack.pop() {
            let (s, d) = self.checksums(&part).await?;
            if part.id == p.id {
                self.seen.record(s != d, s.rows);
            }
            if s == d {
                equal_rows += s.rows;
                continue;
            }
            let rows = s.rows.max(d.rows);
            if rows > self.leaf_rows && part.id == p.id && !self.secondary.is_empty() {
                let finer = part.split_by(&self.secondary);
                if finer.len() > 1 {
                    // Reversed so the lowest range is compared first.
                    stack.extend(finer.into_iter().rev());
                    continue;
                }
            }
            // Without a wide range, buckets would hold every row and halves
            // there are none: cut by the next key column instead.
            let finer_from = if self.bucketing == Some(false) {
                self.leaf_rows
            } else {
                FINER_KEY_ROWS.min(self.leaf_rows)
            };
            if rows > finer_from && first_wide_range(&part).is_none() {
                if let Some(finer) = self.cut_by_next_key(&part).await? {
                    stack.extend(finer.into_iter().rev());
                    continue;
                }
            }
            if self.bucketing != Some(false) {
                if let Some(found) = self.compare_buckets(&part, rows).await? {
                    out.extend(found.leaves);
                    equal_rows += found.equal_rows;
                    // Buckets too full to compare by key in memory, finer.
                    stack.extend(found.too_big.into_iter().rev());
                    continue;
                }
            }
            if rows > self.leaf_rows {
                if let Some((a, b)) = part.halves() {
                    // Depth first, low half first: leaves come out in key order.
                    stack.push(b);
                    stack.push(a);
                    continue;
                }
            }
            let changes = self.compare_rows(&part, None).await?;
            out.push((part, changes));
        }
        Ok((out, equal_rows))
    }

    /// Compares `part` bucket by bucket (sized for `rows_hint` rows in the
    /// partition), then the rows of the differing buckets by key, a chunk of
    /// at most `leaf_rows` rows at a time. `None` when `part` has no integer
    /// range to cut or a side cannot group by bucket.
    async fn compare_buckets(
        &mut self,
        part: &Partition,
        rows_hint: u64,
    ) -> Result<Option<BucketComparison>> {
        let Some(buckets) = buckets_for(part, rows_hint) else {
            return Ok(None);
        };
        let dp = for_destination(part);
        let (s, d) = tokio::join!(
            rowhash::bucket_checksums(self.source.as_mut(), part, buckets),
            rowhash::bucket_checksums(self.destination.as_mut(), &dp, buckets)
        );
        let (Some(s), Some(d)) = (s?, d?) else {
            self.bucketing = Some(false);
            return Ok(None);
        };
        self.bucketing = Some(true);
        let mut found = BucketComparison {
            source_rows: s.iter().map(|(_, c)| c.rows).sum(),
            ..Default::default()
        };
        // Both sorted by bucket: walk them together.
        let mut differing: Vec<(i64, u64)> = Vec::new();
        for pair in s.iter().merge_join_by(&d, |a, b| a.0.cmp(&b.0)) {
            let (bucket, src, dst) = match pair {
                EitherOrBoth::Both(a, b) => (a.0, Some(a.1), Some(b.1)),
                EitherOrBoth::Left(a) => (a.0, Some(a.1), None),
                EitherOrBoth::Right(b) => (b.0, None, Some(b.1)),
            };
            if src == dst {
                found.equal_rows += src.map_or(0, |c| c.rows);
                continue;
            }
            let rows = src.map_or(0, |c| c.rows).max(dst.map_or(0, |c| c.rows));
            differing.push((bucket, rows));
        }
        let dim = buckets.dim;
        let start = |b: i64| {
            buckets
                .origin
                .saturating_add(b.saturating_mul(buckets.width))
        };
        let mut chunks: Vec<Vec<i64>> = Vec::new();
        let mut chunk_rows = 0;
        // A bucket of one value holding many rows is compared again alone,
        // and then cut by the next key column.
        let one_value_finer = buckets.width == 1 && self.next_key_dim(part).is_some();
        for (bucket, rows) in differing {
            if (rows > self.leaf_rows && buckets.width > 1)
                || (one_value_finer && rows > FINER_KEY_ROWS)
            {
                match part.with_range(dim, start(bucket), start(bucket + 1)) {
                    Some(sub) if sub.ranges[dim] != part.ranges[dim] => {
                        found.too_big.push(sub);
                        continue;
                    }
                    _ => {}
                }
            }
            match chunks.last_mut() {
                Some(chunk) if chunk_rows + rows <= self.leaf_rows => chunk.push(bucket),
                _ => {
                    chunks.push(vec![bucket]);
                    chunk_rows = 0;
                }
            }
            chunk_rows += rows;
        }
        let whole = chunks.len() == 1 && found.too_big.is_empty();
        for which in chunks {
            // A leaf is checkpointed on its own: a range that holds its
            // buckets, or the partition itself when one chunk holds them all.
            let leaf = if whole {
                part.clone()
            } else {
                let (first, last) = (which[0], which[which.len() - 1]);
                part.with_range(dim, start(first), start(last + 1))
                    .unwrap_or_else(|| part.clone())
            };
            let changes = self.compare_rows(&leaf, Some((buckets, &which))).await?;
            found.leaves.push((leaf, changes));
        }
        Ok(Some(found))
    }

    /// The first integer key column `part` has no range on.
    fn next_key_dim(&self, part: &Partition) -> Option<&PartitionDimensionRef> {
        self.key_dims
            .iter()
            .find(|k| !part.ranges.iter().any(|(d, _)| d.name == k.name))
    }

    /// `part` cut by the next integer key column: its range over the
    /// values either side has there (and its NULLs, if any). `None` when
    /// no key column is left to cut by.
    async fn cut_by_next_key(&mut self, part: &Partition) -> Result<Option<Vec<Partition>>> {
        let Some(key) = self.next_key_dim(part).cloned() else {
            return Ok(None);
        };
        let dim = PartitionDimension {
            name: key.name.clone(),
            column: key.column.clone(),
            kind: key.kind,
            date_only: key.date_only,
            step: Step::Single,
        };
        let dest_dim = PartitionDimension {
            column: ColumnRef::bare(&key.name),
            ..dim.clone()
        };
        let dp = for_destination(part);
        let (s, d) = tokio::join!(
            self.source.bounds_within(part, std::slice::from_ref(&dim)),
            self.destination
                .bounds_within(&dp, std::slice::from_ref(&dest_dim))
        );
        let (s, d) = (s?, d?);
        let (Some(s), Some(d)) = (s.first(), d.first()) else {
            return Ok(None);
        };
        let ranges = dimension_ranges(&dim, &connectors::bounds::union(*s, *d));
        Ok(Some(
            ranges
                .into_iter()
                .map(|r| part.with_dimension(key.clone(), r))
                .collect(),
        ))
    }

    /// Row hashes of one side, by key.
    async fn hashes(
        mut batches: BatchStream<'_>,
        converter: &RowConverter,
        keys: usize,
    ) -> Result<HashMap<OwnedRow, i64>> {
        let mut map = HashMap::new();
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let rows = converter.convert_columns(&batch.columns()[..keys])?;
            let hashes = batch.column(keys).as_primitive::<Int64Type>();
            for (i, row) in rows.iter().enumerate() {
                map.insert(row.owned(), hashes.value(i));
            }
        }
        Ok(map)
    }

    fn key_converter(&self) -> Result<RowConverter> {
        Ok(RowConverter::new(
            self.key_schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?)
    }

    /// The rows of `p` by key: every row, or with `only` the rows of those
    /// buckets.
    async fn compare_rows(
        &mut self,
        p: &Partition,
        only: Option<(Buckets, &[i64])>,
    ) -> Result<ChangeSet> {
        let keys = self.key_schema.fields().len();
        let converter = self.key_converter()?;
        let page_rows = self.page_rows;
        let dp = for_destination(p);
        let (src, dst) = tokio::join!(
            async {
                let rows = row_hashes(self.source.as_mut(), p, only, page_rows).await?;
                Self::hashes(rows, &converter, keys).await
            },
            async {
                let rows = row_hashes(self.destination.as_mut(), &dp, only, page_rows).await?;
                Self::hashes(rows, &converter, keys).await
            }
        );
        self.diff(&converter, &src?, &dst?)
    }

    /// Keys whose hashes differ or that only the source has are upserts;
    /// keys only the destination has are deletes (when deleting).
    fn diff(
        &self,
        converter: &RowConverter,
        src: &HashMap<OwnedRow, i64>,
        dst: &HashMap<OwnedRow, i64>,
    ) -> Result<ChangeSet> {
        let mut upserts = Vec::new();
        let mut unchanged = 0u64;
        for (key, hash) in src {
            match dst.get(key) {
                Some(h) if h == hash => unchanged += 1,
                _ => upserts.push(key.row()),
            }
        }
        let deletes: Vec<_> = if self.delete_missing {
            dst.keys()
                .filter(|k| !src.contains_key(*k))
                .map(|k| k.row())
                .collect()
        } else {
            Vec::new()
        };
        let batch = |rows: Vec<arrow::row::Row<'_>>| -> Result<RecordBatch> {
            let columns = converter.convert_rows(rows)?;
            if columns.first().is_some_and(|c| c.is_empty()) || columns.is_empty() {
                return Ok(RecordBatch::new_empty(self.key_schema.clone()));
            }
            RecordBatch::try_new(self.key_schema.clone(), columns).map_err(OperatorError::from)
        };
        Ok(ChangeSet {
            all_rows: false,
            unchanged,
            upserts: batch(upserts)?,
            deletes: batch(deletes)?,
            destination_groups: None,
        })
    }
}

impl ChangeDetection {
    /// Compares `p` and sends each differing leaf inside it as a partition
    /// of its own, with its change set, then `p` itself: its checkpoint
    /// says every leaf inside it is done, so a resumed run can skip it.
    /// Rows found equal by checksum are counted with it.
    ///
    /// `rewrite`: a full run deleting missing rows, for a partition whose
    /// whole rows differ. Its leaves are found as a hash run finds them
    /// (over every column), and each is read and upserted whole, with the
    /// keys only the destination has there deleted; a delete is scoped to
    /// its leaf, as a hash run's, so a row whose partition column changed
    /// survives whichever of its two ranges is written first.
    async fn send_leaves(
        &mut self,
        p: Arc<Partition>,
        rewrite: bool,
        out: &mut Output,
    ) -> Result<()> {
        let (leaves, equal_rows) = self
            .differing_leaves(&p)
            .await
            .map_err(|e| name_null_key(e, &p.id, None))?;
        let empty = RecordBatch::new_empty(self.key_schema.clone());
        let mut own = ChangeSet {
            all_rows: false,
            unchanged: equal_rows,
            upserts: empty.clone(),
            deletes: empty.clone(),
            destination_groups: None,
        };
        for (leaf, changes) in leaves {
            let changes = if rewrite {
                // Read whole: its equal rows are counted as they are merged.
                ChangeSet {
                    all_rows: true,
                    unchanged: 0,
                    upserts: empty.clone(),
                    deletes: changes.deletes,
                    destination_groups: None,
                }
            } else {
                changes
            };
            if leaf.id == p.id {
                own = ChangeSet {
                    unchanged: if rewrite { 0 } else { own.unchanged } + changes.unchanged,
                    ..changes
                };
                continue;
            }
            let leaf = Arc::new(leaf);
            out.send(Message::PartitionStart(leaf.clone())).await?;
            out.changes(Arc::new(changes)).await?;
            out.send(Message::PartitionEnd(leaf)).await?;
        }
        out.send(Message::PartitionStart(p)).await?;
        out.changes(Arc::new(own)).await?;
        Ok(())
    }
}

/// One side's (key, hash) stream for `p`, or for its buckets `only`.
async fn row_hashes<'a>(
    side: &'a mut dyn Source,
    p: &Partition,
    only: Option<(Buckets, &[i64])>,
    page_rows: usize,
) -> connectors::Result<BatchStream<'a>> {
    match only {
        Some((buckets, which)) => {
            rowhash::bucket_row_hashes(side, p, buckets, which, page_rows).await
        }
        None => rowhash::row_hashes(side, p, page_rows).await,
    }
}

/// What comparing a partition by buckets found.
#[derive(Default)]
struct BucketComparison {
    /// Ranges holding the differing buckets, each with its change set.
    leaves: Vec<(Partition, ChangeSet)>,
    /// Rows of the buckets whose checksums were equal.
    equal_rows: u64,
    /// Rows the source's buckets held.
    source_rows: u64,
    /// Differing buckets with more rows than a leaf may hold, to compare
    /// again with finer buckets.
    too_big: Vec<Partition>,
}

/// The first range of `p` wider than one value, if any.
fn first_wide_range(p: &Partition) -> Option<usize> {
    p.ranges.iter().position(|(_, r)| {
        matches!(r, DimRange::Range { start, end } if end.as_i64().saturating_sub(start.as_i64()) > 1)
    })
}

/// Buckets over the first integer range of `p` wider than one value (else
/// its first integer range), each about `BUCKET_ROWS` of its `rows_hint`
/// rows wide (at least one value). `None` when `p` has no integer range.
fn buckets_for(p: &Partition, rows_hint: u64) -> Option<Buckets> {
    let integer = |(i, (_, r)): (usize, &(_, DimRange))| match r {
        DimRange::Range {
            start: PartitionValue::Int(a),
            end: PartitionValue::Int(b),
        } => Some((i, *a, *b)),
        _ => None,
    };
    let ranges = || p.ranges.iter().enumerate();
    let (dim, start, end) = ranges()
        .filter_map(integer)
        .find(|(_, a, b)| b.saturating_sub(*a) > 1)
        .or_else(|| ranges().find_map(integer))?;
    let span = (i128::from(end) - i128::from(start)).max(1) as u128;
    let width = (span * u128::from(BUCKET_ROWS)).div_ceil(u128::from(rows_hint.max(1)));
    Some(Buckets {
        dim,
        origin: start,
        width: width.clamp(1, span.min(i64::MAX as u128)) as i64,
    })
}

/// The same ranges over the destination's own columns: hash partitions are
/// on mapped columns (the planner checks), named like their destination.
fn for_destination(p: &Partition) -> Partition {
    let mut dp = p.clone();
    for (dim, _) in &mut dp.ranges {
        dim.column = ColumnRef::bare(&dim.name);
    }
    dp
}

#[async_trait]
impl Operator for ChangeDetection {
    fn name(&self) -> &'static str {
        "change_detection"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        if self.partitions_only {
            let (s, d) = self
                .checksums_by_reading(&p)
                .await
                .map_err(|e| name_null_key(e, &p.id, None))?;
            let equal = s == d;
            if !equal && self.delete_missing {
                return self.send_leaves(p, true, out).await;
            }
            let empty = RecordBatch::new_empty(self.key_schema.clone());
            out.send(Message::PartitionStart(p)).await?;
            out.changes(Arc::new(ChangeSet {
                all_rows: !equal,
                unchanged: if equal { s.rows } else { 0 },
                upserts: empty.clone(),
                deletes: empty,
                destination_groups: None,
            }))
            .await?;
            return Ok(());
        }
        self.send_leaves(p, false, out).await
    }
}

#[cfg(test)]
mod tests {
    use super::{buckets_for, PartitionHistory};
    use planner::partition::{DimRange, Partition, PartitionDimensionRef, PartitionValue};
    use planner::types::PartitionKind;

    #[test]
    fn checksums_are_skipped_only_once_most_partitions_differ() {
        let mut h = PartitionHistory::default();
        assert!(!h.skip_checksum(100, false));
        h.record(true, 50);
        assert!(h.skip_checksum(100, false), "the first differed");
        h.record(false, 50);
        assert!(!h.skip_checksum(100, false), "one of two differed");
        h.record(true, 50);
        assert!(h.skip_checksum(100, false));
        h.record(false, 50);
        h.record(false, 50);
        assert!(
            !h.skip_checksum(100, false),
            "half differ: keep checksums first"
        );
        let mut big = PartitionHistory::default();
        big.record(true, 500);
        big.record(true, 500);
        assert!(
            !big.skip_checksum(100, false),
            "too big to compare in memory"
        );
        assert_eq!(big.mean_rows(), 500);
    }

    #[test]
    fn partitions_too_big_for_memory_skip_checksums_only_by_buckets() {
        let mut big = PartitionHistory::default();
        big.record(true, 500);
        big.record(true, 500);
        assert!(!big.skip_checksum(100, false));
        assert!(big.skip_checksum(100, true));
        big.record(false, 500);
        big.record(false, 500);
        assert!(!big.skip_checksum(100, true), "half differ");
    }

    fn range(kind: PartitionKind, start: PartitionValue, end: PartitionValue) -> Partition {
        let dim = PartitionDimensionRef {
            name: "k".into(),
            column: planner::ColumnRef::bare("k"),
            kind,
            date_only: false,
        };
        Partition {
            id: "k".into(),
            ranges: vec![(dim, DimRange::Range { start, end })],
        }
    }

    #[test]
    fn buckets_hold_about_64_of_the_expected_rows() {
        let p = range(
            PartitionKind::Integer,
            PartitionValue::Int(1000),
            PartitionValue::Int(101_000),
        );
        // Dense keys: 64 values a bucket.
        let b = buckets_for(&p, 100_000).unwrap();
        assert_eq!((b.dim, b.origin, b.width), (0, 1000, 64));
        // One row in ten values: 640 values a bucket.
        assert_eq!(buckets_for(&p, 10_000).unwrap().width, 640);
        // Fewer rows than a bucket holds: one bucket, the whole range.
        assert_eq!(buckets_for(&p, 10).unwrap().width, 100_000);
        assert_eq!(buckets_for(&p, 0).unwrap().width, 100_000);
        // More rows than values (a non-unique partition column): one value.
        assert_eq!(buckets_for(&p, 10_000_000).unwrap().width, 1);
        let wide = range(
            PartitionKind::Integer,
            PartitionValue::Int(i64::MIN),
            PartitionValue::Int(i64::MAX),
        );
        assert_eq!(buckets_for(&wide, 1).unwrap().width, i64::MAX);
        let dates = range(
            PartitionKind::Datetime,
            PartitionValue::Micros(0),
            PartitionValue::Micros(1_000_000),
        );
        assert_eq!(
            buckets_for(&dates, 100),
            None,
            "datetime ranges are not bucketed"
        );
    }

    #[test]
    fn buckets_cut_the_first_range_wider_than_one_value() {
        let one_tenant = range(
            PartitionKind::Integer,
            PartitionValue::Int(2),
            PartitionValue::Int(3),
        );
        // Alone, a one-value range is still bucketed: one bucket.
        let alone = buckets_for(&one_tenant, 1000).unwrap();
        assert_eq!((alone.dim, alone.width), (0, 1));
        let ids = range(
            PartitionKind::Integer,
            PartitionValue::Int(0),
            PartitionValue::Int(6400),
        );
        let (dim, r) = ids.ranges[0].clone();
        let both = one_tenant.with_dimension(
            PartitionDimensionRef {
                name: "id".into(),
                ..dim
            },
            r,
        );
        assert_eq!(both.id, "k_2_3__id_0_6400");
        let b = buckets_for(&both, 6400).unwrap();
        assert_eq!((b.dim, b.origin, b.width), (1, 0, 64));
    }
}
