//! An aggregate sync's `datafusion` engine: each partition's rows (every
//! row of the groups they touch, as the source selected them) are grouped
//! in DataFusion as they arrive, and the groups leave in the destination's
//! columns when the partition ends.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use compute::Grouping;
use connectors::rowhash::ROW_HASH_COLUMN;
use planner::model::{Aggregate, AggregateColumn, MappedColumn};
use planner::partition::Partition;
use planner::sql_expr::{SqlDialect, SqlExpr};

use crate::message::Message;
use crate::operator::{Operator, OperatorError, Output, Result};

pub struct Regroup {
    aggregate: Aggregate,
    /// The rows' columns, as the source reads them (and their hash, when
    /// the groups carry a checksum).
    row_schema: SchemaRef,
    /// With a `StoredHash::GroupSum` column: the columns each row's hash
    /// covers, appended to the row before grouping and summed per group.
    row_hash_columns: Option<Vec<MappedColumn>>,
    /// The destination's columns, in its order.
    columns: Vec<MappedColumn>,
    schema: SchemaRef,
    grouping: Option<Grouping>,
}

impl Regroup {
    pub fn new(
        mut aggregate: Aggregate,
        row_schema: SchemaRef,
        columns: Vec<MappedColumn>,
    ) -> Result<Self> {
        let specs: Vec<_> = columns.iter().map(|c| c.spec.clone()).collect();
        let mut row_schema = row_schema;
        let mut row_hash_columns = None;
        if let Some(sum) = aggregate.group_sum.clone() {
            let hashed = aggregate.row_hash_columns().ok_or_else(|| {
                OperatorError::Other(format!(
                    "hash_key column \"{sum}\" sums row hashes over typed source columns, and the group-by reads an untyped one (the planner's bug)"
                ))
            })?;
            let mut fields: Vec<Field> = row_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(ROW_HASH_COLUMN, DataType::Int64, false));
            row_schema = Arc::new(Schema::new(fields));
            let expr = SqlExpr::parse(&format!("sum(\"{ROW_HASH_COLUMN}\")"), SqlDialect::Postgres)
                .map_err(OperatorError::Other)?;
            aggregate.values.push(AggregateColumn {
                dest: sum,
                expr,
                reads: vec![ROW_HASH_COLUMN.to_string()],
            });
            row_hash_columns = Some(hashed);
        }
        Ok(Regroup {
            aggregate,
            row_schema,
            row_hash_columns,
            schema: planner::types::arrow_schema(&specs),
            columns,
            grouping: None,
        })
    }

    /// `batch` with its rows' hashes appended, when the groups sum them.
    fn with_row_hashes(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(hashed) = &self.row_hash_columns else {
            return Ok(batch);
        };
        let hashes = connectors::rowhash::try_hash_rows(&batch, hashed)?;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(hashes));
        Ok(RecordBatch::try_new(self.row_schema.clone(), columns)?)
    }
}
/// A batch of groups (keys then values, by destination name) as the
/// destination's `columns` (of Arrow `schema`): each value cast to its
/// column's type, where a value that does not fit is an error naming the
/// column, and the row hash computed as a source computes it.
pub fn groups_as_destination(
    groups: &RecordBatch,
    columns: &[MappedColumn],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let arrays = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, field)| {
            if c.stored_hash.is_compute() {
                return Ok(new_null_array(field.data_type(), groups.num_rows()));
            }
            let values = groups.column_by_name(&c.dest).ok_or_else(|| {
                OperatorError::Other(format!(
                    "the group-by computed no column \"{}\" (an operator's bug)",
                    c.dest
                ))
            })?;
            cast_to_column(values, field.data_type(), c, "aggregate column")
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(connectors::rowhash::fill_computed_hash(batch, columns)?)
}

/// `values` as `data_type`, the Arrow type of `column` (`what` it is, for
/// the error): a value that does not fit stops the run with the column
/// named, never turns NULL.
pub(crate) fn cast_to_column(
    values: &ArrayRef,
    data_type: &DataType,
    column: &MappedColumn,
    what: &str,
) -> Result<ArrayRef> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(values, data_type, &strict).map_err(|e| {
        OperatorError::Other(format!(
            "{what} \"{}\": a value does not fit its data_type {}: {e}",
            column.dest, column.data_type
        ))
    })
}

#[async_trait]
impl Operator for Regroup {
    fn name(&self) -> &'static str {
        "regroup"
    }

    async fn on_partition_start(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        self.grouping = Some(Grouping::start(
            self.aggregate.clone(),
            self.row_schema.clone(),
        ));
        out.send(Message::PartitionStart(p)).await
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Output) -> Result<()> {
        let batch = self.with_row_hashes(batch)?;
        match &mut self.grouping {
            Some(g) => g.push(batch).await.map_err(OperatorError::from),
            None => Err(OperatorError::Other(
                "rows outside a partition (an operator's bug)".into(),
            )),
        }
    }

    async fn on_partition_end(&mut self, p: Arc<Partition>, out: &mut Output) -> Result<()> {
        if let Some(grouping) = self.grouping.take() {
            for groups in grouping.finish().await.map_err(OperatorError::from)? {
                if groups.num_rows() > 0 {
                    out.batch(groups_as_destination(&groups, &self.columns, &self.schema)?)
                        .await?;
                }
            }
        }
        out.send(Message::PartitionEnd(p)).await
    }
}
