//! Every SQL source is a `Source` through `SqlSource`: its selects are
//! rendered here in its dialect, and it only binds their values and streams
//! the rows (`run_select`), the part that differs between database drivers.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, OccupiedBuckets, Partition, PartitionDimension, PartitionValue,
};

use super::{select_by_keys, select_partition_sql, Dialect, KeyValues};
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
        let from = self.select_from();
        let select = super::select::select_groups_sql(
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
