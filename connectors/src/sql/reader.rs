//! Every SQL source is a `Source` through `SqlSource`: its selects are
//! rendered here in its dialect, and it only binds their values and streams
//! the rows (`run_select`), the part that differs between database drivers.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBuckets, Partition, PartitionDimension, PartitionValue,
};

use super::grouped::{lookup_rows_select, select_bound_groups_sql, window_keys_select};
use super::{select_by_keys, select_partition_sql, Dialect, KeyKind, KeyValues, ListedGroups};
use crate::traits::{BatchStream, HashPushdown, Source};
use crate::Result;

/// A rendered select: its SQL, the partition's range values in the order
/// of their placeholders, and for a select by key the keys, one list per
/// key column, bound after them as the dialect's `keys_in` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub sql: String,
    pub params: Vec<PartitionValue>,
    pub keys: Vec<KeyValues>,
}

/// What a SQL source's selects read.
#[derive(Clone, Copy)]
pub struct SelectFrom<'a> {
    pub dialect: &'a dyn Dialect,
    pub table: &'a TableRef,
    pub columns: &'a [MappedColumn],
}

/// A source that is a SQL database: what it gives for its selects to be
/// rendered, how it runs one, and the `Source` methods that are its own.
#[async_trait]
pub trait SqlSource: Send {
    /// What its selects read: the dialect, the table (with its joins and
    /// filters) and the columns in the destination's order.
    fn select_from(&self) -> SelectFrom<'_>;
    /// `Source::check`.
    async fn check_readable(&mut self) -> Result<()>;
    /// `Source::bounds` (`within` the whole table) and
    /// `Source::bounds_within`.
    async fn column_bounds(
        &mut self,
        within: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>>;
    /// `Source::occupied_buckets` of one dimension or more: the rows of
    /// [`super::buckets_sql`] (bound as `scope`'s ranges bind, then its
    /// 64-bit integers), counted per combination.
    async fn occupied(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>>;
    /// Binds `select`'s values (`partition` tells how its ranges bind) and
    /// streams its rows, at most `page_rows` per batch.
    async fn run_select<'a>(
        &'a mut self,
        partition: &Partition,
        select: Select,
        page_rows: usize,
    ) -> Result<BatchStream<'a>>;
    /// `Source::hash_pushdown`.
    fn pushdown(&mut self) -> Option<&mut dyn HashPushdown> {
        None
    }
    /// `Source::estimated_rows`.
    async fn row_estimate(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The rows of `select` (bound as `run_select` binds), one list per
    /// column as `kinds` says, when this source reads an aggregate window's
    /// group keys before re-computing their groups, so that they are bound
    /// and the database plans for their real number (`GroupMatch::Bound`).
    /// `None`: it matches the window's rows by a semi-join instead.
    async fn select_keys(
        &mut self,
        _select: Select,
        _kinds: &[KeyKind],
    ) -> Result<Option<Vec<KeyValues>>> {
        Ok(None)
    }
    /// The rows the table is estimated to hold when an index on it starts
    /// with `columns` (in any order), so that a group's rows are found by
    /// a lookup; `None` otherwise (or for a join).
    async fn indexed_rows(&mut self, _columns: &[String]) -> Result<Option<u64>> {
        Ok(None)
    }
}

#[async_trait]
impl<S: SqlSource> Source for S {
    fn columns(&self) -> &[MappedColumn] {
        self.select_from().columns
    }

    async fn check(&mut self) -> Result<()> {
        self.check_readable().await
    }

    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>> {
        self.column_bounds(&Partition::whole(), dims).await
    }

    async fn bounds_within(
        &mut self,
        partition: &Partition,
        dims: &[PartitionDimension],
    ) -> Result<Vec<ColumnBounds>> {
        self.column_bounds(partition, dims).await
    }

    async fn occupied_buckets(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        if dims.is_empty() {
            return Ok(None);
        }
        self.occupied(scope, dims, grids, limit).await
    }

    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        read_partition(self, partition, page_rows).await
    }

    async fn read_keys<'a>(
        &'a mut self,
        partition: &Partition,
        keys: &RecordBatch,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        read_by_keys(self, partition, keys, page_rows).await
    }

    async fn read_groups<'a>(
        &'a mut self,
        partition: &Partition,
        listed: &super::ListedGroups,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        if let Some(select) = bound_groups_select(self, partition, Some(listed)).await? {
            return Ok(Some(self.run_select(partition, select, page_rows).await?));
        }
        let from = self.select_from();
        let select = super::grouped::select_groups_sql(
            from.dialect,
            from.table,
            from.columns,
            partition,
            listed,
        );
        match select {
            Some(select) => Ok(Some(self.run_select(partition, select, page_rows).await?)),
            None => Ok(None),
        }
    }

    fn hash_pushdown(&mut self) -> Option<&mut dyn HashPushdown> {
        self.pushdown()
    }

    async fn estimated_rows(&mut self) -> Result<Option<u64>> {
        self.row_estimate().await
    }
}

/// The rows of `partition`.
async fn read_partition<'a, R: SqlSource + ?Sized>(
    source: &'a mut R,
    partition: &Partition,
    page_rows: usize,
) -> Result<BatchStream<'a>> {
    if let Some(select) = bound_groups_select(source, partition, None).await? {
        return source.run_select(partition, select, page_rows).await;
    }
    let from = source.select_from();
    let (sql, params) = select_partition_sql(from.dialect, from.table, from.columns, partition);
    let select = Select {
        sql,
        params,
        keys: Vec::new(),
    };
    source.run_select(partition, select, page_rows).await
}

/// The rows of `partition` with these keys, or `None` when they cannot be
/// bound (see `select_by_keys`; the caller then reads the partition and
/// filters).
async fn read_by_keys<'a, R: SqlSource + ?Sized>(
    source: &'a mut R,
    partition: &Partition,
    keys: &RecordBatch,
    page_rows: usize,
) -> Result<Option<BatchStream<'a>>> {
    let from = source.select_from();
    let select = select_by_keys(from.dialect, from.table, from.columns, partition, keys)?;
    match select {
        Some(select) => Ok(Some(source.run_select(partition, select, page_rows).await?)),
        None => Ok(None),
    }
}

/// How many of a window's keys are looked up to learn how many rows a
/// group has.
const SAMPLED_KEYS: usize = 16;

/// The share of the table (1 in this many rows) up to which the touched
/// groups' rows are found by index lookups rather than by hashing every
/// row's keys: a lookup costs some 30 times a scanned row (PostgreSQL,
/// docs/decisions.md "How the window's groups are matched").
const LOOKUP_SHARE: u64 = 40;

/// An aggregate's read of `partition`'s window with its keys bound: the
/// window's distinct keys are read first (plus `listed` ones), then their
/// groups re-computed, found by index lookups when they are few enough
/// (`SAMPLED_KEYS` of them tell how many rows a group has) and by a hash of
/// the table's keys otherwise. `None` where the source does not read keys
/// first (`SqlSource::select_keys`), the partition is not a window, or a
/// key's type is unknown: the caller then matches by a semi-join.
async fn bound_groups_select<R: SqlSource + ?Sized>(
    source: &mut R,
    partition: &Partition,
    listed: Option<&ListedGroups>,
) -> Result<Option<Select>> {
    let from = source.select_from();
    let d = from.dialect;
    let Some(grouped) = from.table.grouped.as_ref() else {
        return Ok(None);
    };
    let Some(types) = group_key_types(grouped, from.columns) else {
        return Ok(None);
    };
    let kinds: Vec<KeyKind> = types.iter().map(KeyKind::of).collect();
    if listed.is_some_and(|l| {
        l.values
            .iter()
            .map(KeyValues::kind)
            .ne(kinds.iter().copied())
    }) {
        return Ok(None);
    }
    let Some(window) = window_keys_select(d, from.table, partition, &kinds) else {
        return Ok(None);
    };
    let key_columns: Option<Vec<String>> = grouped
        .aggregate
        .key_ranges
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|r| r.column.rsplit('.').next().unwrap_or(&r.column).to_string())
        })
        .collect();
    let single_table = from.table.joins.is_empty();
    let Some(mut values) = source.select_keys(window, &kinds).await? else {
        return Ok(None);
    };
    if let Some(listed) = listed {
        for (all, more) in values.iter_mut().zip(&listed.values) {
            all.extend(more);
        }
    }
    let keys = ListedGroups { values, types };
    let count = keys.len();
    let mut lookup = false;
    let indexed = match &key_columns {
        Some(columns) if count > 0 && single_table => source.indexed_rows(columns).await?,
        _ => None,
    };
    if let Some(table_rows) = indexed {
        let sample = keys.sample(SAMPLED_KEYS);
        let from = source.select_from();
        if let Some(select) = lookup_rows_select(from.dialect, from.table, &sample) {
            let counted = source.select_keys(select, &[KeyKind::Int]).await?;
            if let Some(KeyValues::Ints(n)) = counted.as_ref().and_then(|c| c.first()) {
                let sampled_rows = n.first().copied().unwrap_or(0).max(0) as u64;
                let touched_rows = sampled_rows * count as u64 / sample.len().max(1) as u64;
                lookup = touched_rows <= table_rows / LOOKUP_SHARE;
            }
        }
    }
    tracing::debug!(
        groups = count,
        lookup,
        "an aggregate window touches {count} groups, found by {}",
        if lookup {
            "index lookups"
        } else {
            "a hash of the table's keys"
        }
    );
    let from = source.select_from();
    Ok(select_bound_groups_sql(
        from.dialect,
        from.table,
        from.columns,
        partition,
        &keys,
        lookup,
    ))
}

/// The types an aggregate's group keys are bound as: the destination's key
/// columns where `columns` are the groups' (the source computes them), else
/// for the rows' columns a key that is one of them or its day. `None` when
/// a key is neither.
fn group_key_types(
    grouped: &planner::model::GroupedRead,
    columns: &[planner::model::MappedColumn],
) -> Option<Vec<planner::types::ColumnType>> {
    use planner::model::GroupedForm;
    use planner::types::ColumnType;
    let aggregate = &grouped.aggregate;
    aggregate
        .keys
        .iter()
        .zip(&aggregate.key_ranges)
        .map(|(key, range)| match grouped.form {
            GroupedForm::Groups => columns
                .iter()
                .find(|c| c.dest == key.dest)
                .map(|c| c.spec.data_type),
            GroupedForm::Rows => match range {
                Some(r) if r.day_of => Some(ColumnType::Date),
                Some(r) => columns
                    .iter()
                    .find(|c| c.source == r.column)
                    .map(|c| c.spec.data_type),
                None => None,
            },
        })
        .collect()
}
