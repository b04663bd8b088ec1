//! An aggregate sync's `datafusion` engine: each partition's rows (every
//! row of the groups they touch, as the source selected them) are grouped
//! in DataFusion as they arrive, and the groups leave in the destination's
//! columns when the partition ends.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use compute::Grouping;
use planner::model::{Aggregate, MappedColumn};
use planner::partition::Partition;

use crate::message::Message;
use crate::operator::{Operator, OperatorError, Output, Result};

pub struct Regroup {
    aggregate: Aggregate,
    /// The rows' columns, as the source reads them.
    row_schema: SchemaRef,
    /// The destination's columns, in its order.
    columns: Vec<MappedColumn>,
    schema: SchemaRef,
    grouping: Option<Grouping>,
}

impl Regroup {
    pub fn new(aggregate: Aggregate, row_schema: SchemaRef, columns: Vec<MappedColumn>) -> Self {
        let specs: Vec<_> = columns.iter().map(|c| c.spec.clone()).collect();
        Regroup {
            aggregate,
            row_schema,
            schema: planner::types::arrow_schema(&specs),
            columns,
            grouping: None,
        }
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
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
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
            cast_with_options(values, field.data_type(), &strict).map_err(|e| {
                OperatorError::Other(format!(
                    "aggregate column \"{}\": a re-computed value does not fit its data_type {}: {e}",
                    c.dest, c.data_type
                ))
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(connectors::rowhash::fill_computed_hash(batch, columns)?)
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
