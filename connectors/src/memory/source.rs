//! Reading a memory table: partitions filtered here, columns conformed to the
//! destination's types.

use std::collections::HashSet;

use arrow::array::{new_null_array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use planner::model::{MappedColumn, StoredHash, TableRef};
use planner::partition::{
    BucketGrid, ColumnBounds, DimRange, OccupiedBuckets, Partition, PartitionDimension,
};
use planner::types::{arrow_schema, ColumnSpec};
use planner::ColumnRef;

use super::store::{column, table_key, tables};
use crate::bounds::{as_bound_values, widen, OccupiedCount};
use crate::{BatchStream, ConnectorError, Result, Source};

pub struct MemorySource {
    key: (String, String),
    table: String,
    columns: Vec<MappedColumn>,
    specs: Vec<ColumnSpec>,
}

impl MemorySource {
    pub fn open(table: &TableRef, columns: &[MappedColumn]) -> Result<MemorySource> {
        Ok(MemorySource {
            key: table_key(table)?,
            table: table.display_name(),
            columns: columns.to_vec(),
            specs: columns.iter().map(|c| c.spec.clone()).collect(),
        })
    }

    /// The table's rows now.
    fn rows(&self) -> Result<RecordBatch> {
        tables()
            .get(&self.key)
            .map(|t| t.rows.clone())
            .ok_or_else(|| ConnectorError::Schema(format!("table {} does not exist", self.table)))
    }

    /// A partition dimension's or a column's values, by the column's own
    /// name (a memory table has no joins: the qualifier names the table).
    fn values<'a>(&self, rows: &'a RecordBatch, source: &ColumnRef) -> Result<&'a ArrayRef> {
        let name = &source.column;
        column(rows, name).ok_or_else(|| {
            ConnectorError::Schema(format!("table {} has no column \"{name}\"", self.table))
        })
    }

    /// Which of `rows` fall in every range of `partition`.
    fn in_partition(&self, rows: &RecordBatch, partition: &Partition) -> Result<Vec<bool>> {
        let mut keep = vec![true; rows.num_rows()];
        for (dim, range) in &partition.ranges {
            let values = as_bound_values(self.values(rows, &dim.column)?, dim.kind)?;
            for (k, v) in keep.iter_mut().zip(&values) {
                *k &= match (range, v) {
                    (DimRange::All, _) => true,
                    (DimRange::Null, v) => v.is_none(),
                    (DimRange::Range { start, end }, Some(v)) => {
                        start.as_i64() <= *v && *v < end.as_i64()
                    }
                    (DimRange::Range { .. }, None) => false,
                };
            }
        }
        Ok(keep)
    }

    /// The rows as the destination's columns, of the destination's types.
    fn project(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let schema = arrow_schema(&self.specs);
        let arrays = self
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(c, field)| -> Result<ArrayRef> {
                if c.stored_hash == StoredHash::Compute {
                    return Ok(new_null_array(field.data_type(), rows.num_rows()));
                }
                let values = self.values(rows, &c.source_ref)?;
                crate::conform::conform_array(values, &c.spec.data_type)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(schema, arrays)?;
        crate::rowhash::fill_computed_hash(batch, &self.columns)
    }
}

#[async_trait]
impl Source for MemorySource {
    fn columns(&self) -> &[MappedColumn] {
        &self.columns
    }

    async fn check(&mut self) -> Result<()> {
        let rows = self.rows()?;
        for c in &self.columns {
            if c.stored_hash == StoredHash::Compute {
                continue;
            }
            let values = self.values(&rows, &c.source_ref)?;
            if !crate::conform::conformable(values.data_type(), &c.spec.data_type) {
                return Err(ConnectorError::Schema(format!(
                    "column \"{}\" of {} is {}, which cannot be read as {}",
                    c.source_column(),
                    self.table,
                    values.data_type(),
                    c.spec.data_type
                )));
            }
        }
        Ok(())
    }

    async fn bounds(&mut self, dims: &[PartitionDimension]) -> Result<Vec<ColumnBounds>> {
        let rows = self.rows()?;
        dims.iter()
            .map(|d| {
                let values = as_bound_values(self.values(&rows, &d.column)?, d.kind)?;
                let mut bounds = ColumnBounds {
                    min_max: None,
                    has_nulls: false,
                };
                widen(&mut bounds, &values, d.kind);
                Ok(bounds)
            })
            .collect()
    }

    /// Exact: the rows are at hand.
    async fn estimated_rows(&mut self) -> Result<Option<u64>> {
        let rows = self.rows()?;
        let keep = self.in_partition(&rows, &Partition::whole())?;
        Ok(Some(keep.iter().filter(|k| **k).count() as u64))
    }

    async fn occupied_buckets(
        &mut self,
        scope: &Partition,
        dims: &[PartitionDimension],
        grids: &[BucketGrid],
        limit: usize,
    ) -> Result<Option<OccupiedBuckets>> {
        let rows = self.rows()?;
        let keep = self.in_partition(&rows, scope)?;
        let values = dims
            .iter()
            .map(|d| as_bound_values(self.values(&rows, &d.column)?, d.kind))
            .collect::<Result<Vec<_>>>()?;
        let mut count = OccupiedCount::default();
        count.add(
            &values,
            grids,
            (0..rows.num_rows()).filter(|r| keep[*r]),
            limit,
        );
        Ok(Some(count.finish()))
    }

    async fn read<'a>(
        &'a mut self,
        partition: &Partition,
        page_rows: usize,
    ) -> Result<BatchStream<'a>> {
        let rows = self.partition_rows(partition)?;
        Ok(pages(rows, page_rows))
    }

    /// The partition's rows whose unique columns are among `keys`, as a
    /// database's index would find them.
    async fn read_keys<'a>(
        &'a mut self,
        partition: &Partition,
        keys: &RecordBatch,
        page_rows: usize,
    ) -> Result<Option<BatchStream<'a>>> {
        let rows = self.partition_rows(partition)?;
        let key_columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.spec.unique)
            .map(|(i, _)| rows.column(i).clone())
            .collect();
        if key_columns.len() != keys.num_columns() {
            return Ok(None);
        }
        let converter = RowConverter::new(
            key_columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        let wanted = converter.convert_columns(keys.columns())?;
        let wanted: HashSet<&[u8]> = wanted.iter().map(|r| r.data()).collect();
        let found = converter.convert_columns(&key_columns)?;
        let keep: BooleanArray = found
            .iter()
            .map(|r| Some(wanted.contains(r.data())))
            .collect();
        let kept = filter_record_batch(&rows, &keep)?;
        Ok(Some(pages(kept, page_rows)))
    }
}

impl MemorySource {
    /// The rows of `partition`, projected.
    fn partition_rows(&self, partition: &Partition) -> Result<RecordBatch> {
        let rows = self.rows()?;
        let keep = self.in_partition(&rows, partition)?;
        let kept = filter_record_batch(&rows, &BooleanArray::from(keep))?;
        self.project(&kept)
    }
}

/// `rows` as a stream of batches of at most `page_rows`.
fn pages<'a>(rows: RecordBatch, page_rows: usize) -> BatchStream<'a> {
    let page_rows = page_rows.max(1);
    let pages: Vec<Result<RecordBatch>> = (0..rows.num_rows())
        .step_by(page_rows)
        .map(|at| Ok(rows.slice(at, page_rows.min(rows.num_rows() - at))))
        .collect();
    Box::pin(futures_util::stream::iter(pages))
}
