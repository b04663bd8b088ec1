//! Hash change detection: compare partition checksums on both sides, bisect
//! the partitions that differ down to a small range, then compare row hashes
//! by key to find exactly which rows to insert, update or delete.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use async_trait::async_trait;
use connectors::{Checksum, Source};
use futures_util::StreamExt;
use planner::model::quote_ident;
use planner::partition::{Partition, PartitionDimension};

use crate::message::{ChangeSet, Message};
use crate::operator::{Operator, OperatorError, Output, Result};

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
}

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

    /// When most partitions so far differed, a checksum mostly costs a scan
    /// that the row-hash comparison repeats anyway: skip it, as long as a
    /// partition is small enough to compare by key in memory.
    fn prefer_row_hashes(&self, leaf_rows: u64) -> bool {
        self.compared >= 2
            && self.differing * 2 > self.compared
            && self.rows / self.compared <= leaf_rows
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
        ChangeDetection {
            source,
            destination,
            leaf_rows: leaf_rows.max(1),
            delete_missing,
            key_schema,
            page_rows,
            secondary: Vec::new(),
            partitions_only: false,
            seen: PartitionHistory::default(),
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
        let (s, d) = tokio::join!(self.source.checksum(p), self.destination.checksum(&dp));
        Ok((s?, d?))
    }

    /// Whole-row checksums computed here from both sides' rows as read.
    /// Binary reads and a fast in-process hash beat md5 in SQL when the
    /// databases are close; the hash only has to agree with itself.
    async fn checksums_by_reading(&mut self, p: &Partition) -> Result<(Checksum, Checksum)> {
        let dp = for_destination(p);
        let page_rows = self.page_rows;
        let (s, d) = tokio::join!(
            read_checksum(self.source.as_mut(), p, page_rows),
            read_checksum(self.destination.as_mut(), &dp, page_rows)
        );
        Ok((s?, d?))
    }

    /// The leaves of `p` whose rows differ, each with its change set, and
    /// the rows of `p` found equal outside those leaves (by checksum).
    async fn differing_leaves(
        &mut self,
        p: &Partition,
    ) -> Result<(Vec<(Partition, ChangeSet)>, u64)> {
        if self.seen.prefer_row_hashes(self.leaf_rows) {
            let changes = self.compare_rows(p).await?;
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
        let mut out = Vec::new();
        let mut equal_rows = 0;
        let mut stack = vec![p.clone()];
        while let Some(part) = stack.pop() {
            let (s, d) = self.checksums(&part).await?;
            if part.id == p.id {
                self.seen.record(s != d, s.rows);
            }
            if s == d {
                equal_rows += s.rows;
                continue;
            }
            if s.rows.max(d.rows) > self.leaf_rows {
                if part.id == p.id && !self.secondary.is_empty() {
                    let finer = part.split_by(&self.secondary);
                    if finer.len() > 1 {
                        // Reversed so the lowest range is compared first.
                        stack.extend(finer.into_iter().rev());
                        continue;
                    }
                }
                if let Some((a, b)) = part.halves() {
                    // Depth first, low half first: leaves come out in key order.
                    stack.push(b);
                    stack.push(a);
                    continue;
                }
            }
            let changes = self.compare_rows(&part).await?;
            out.push((part, changes));
        }
        Ok((out, equal_rows))
    }

    /// Row hashes of one side, by key.
    async fn hashes(
        side: &mut dyn Source,
        p: &Partition,
        page_rows: usize,
        converter: &RowConverter,
        keys: usize,
    ) -> Result<HashMap<OwnedRow, i64>> {
        let mut map = HashMap::new();
        let mut batches = side.row_hashes(p, page_rows).await?;
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

    async fn compare_rows(&mut self, p: &Partition) -> Result<ChangeSet> {
        let keys = self.key_schema.fields().len();
        let converter = RowConverter::new(
            self.key_schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let page_rows = self.page_rows;
        let dp = for_destination(p);
        let (src, dst) = tokio::join!(
            Self::hashes(self.source.as_mut(), p, page_rows, &converter, keys),
            Self::hashes(self.destination.as_mut(), &dp, page_rows, &converter, keys)
        );
        let (src, dst) = (src?, dst?);
        let mut upserts = Vec::new();
        let mut unchanged = 0u64;
        for (key, hash) in &src {
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
        })
    }
}

/// Count and wrapping sum of a per-process hash of every row's Arrow row
/// encoding (all columns, destination types).
async fn read_checksum(side: &mut dyn Source, p: &Partition, page_rows: usize) -> Result<Checksum> {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hasher = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let mut sum = Checksum::default();
    let mut converter: Option<RowConverter> = None;
    let mut batches = side.read(p, page_rows).await?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let converter = match &mut converter {
            Some(c) => c,
            None => converter.insert(RowConverter::new(
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?),
        };
        let rows = converter.convert_columns(batch.columns())?;
        for row in rows.iter() {
            sum.rows += 1;
            sum.sum = sum.sum.wrapping_add(hasher.hash_one(row.as_ref()));
        }
    }
    Ok(sum)
}

/// The same ranges over the destination's own columns: hash partitions are
/// on mapped columns (the planner checks), named like their destination.
fn for_destination(p: &Partition) -> Partition {
    let mut dp = p.clone();
    for (dim, _) in &mut dp.ranges {
        dim.source_expr = quote_ident(&dim.name);
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
            let (s, d) = self.checksums_by_reading(&p).await?;
            let equal = s == d;
            let empty = RecordBatch::new_empty(self.key_schema.clone());
            out.send(Message::PartitionStart(p)).await?;
            out.send(Message::Changes(Arc::new(ChangeSet {
                all_rows: !equal,
                unchanged: if equal { s.rows } else { 0 },
                upserts: empty.clone(),
                deletes: empty,
            })))
            .await?;
            return Ok(());
        }
        let (leaves, equal_rows) = self.differing_leaves(&p).await?;
        let mut own = ChangeSet {
            all_rows: false,
            unchanged: equal_rows,
            upserts: RecordBatch::new_empty(self.key_schema.clone()),
            deletes: RecordBatch::new_empty(self.key_schema.clone()),
        };
        for (leaf, changes) in leaves {
            if leaf.id == p.id {
                own = ChangeSet {
                    unchanged: own.unchanged + changes.unchanged,
                    ..changes
                };
                continue;
            }
            let leaf = Arc::new(leaf);
            out.send(Message::PartitionStart(leaf.clone())).await?;
            out.send(Message::Changes(Arc::new(changes))).await?;
            out.send(Message::PartitionEnd(leaf)).await?;
        }
        // The partition itself comes last: its checkpoint says every leaf
        // inside it is done, so a resumed run can skip it. Rows found equal
        // by checksum are counted with it.
        out.send(Message::PartitionStart(p)).await?;
        out.send(Message::Changes(Arc::new(own))).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionHistory;

    #[test]
    fn row_hashes_first_only_once_most_partitions_differ() {
        let mut h = PartitionHistory::default();
        assert!(!h.prefer_row_hashes(100));
        h.record(true, 50);
        assert!(!h.prefer_row_hashes(100), "one partition is no evidence");
        h.record(true, 50);
        assert!(h.prefer_row_hashes(100));
        h.record(false, 50);
        h.record(false, 50);
        assert!(
            !h.prefer_row_hashes(100),
            "half differ: keep checksums first"
        );
        let mut big = PartitionHistory::default();
        big.record(true, 500);
        big.record(true, 500);
        assert!(!big.prefer_row_hashes(100), "too big to compare in memory");
    }
}
