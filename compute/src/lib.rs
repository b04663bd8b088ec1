//! Aggregate syncs' `datafusion` engine: the group-by the planner parsed,
//! run by DataFusion over Arrow batches of source rows.
//!
//! The planner parses each column `expr` once with sqlparser, the version
//! DataFusion 55.2 parses with, so the tree it validated is the tree
//! DataFusion plans here (`create_logical_expr_from_sql_expr`): no SQL text
//! is printed and parsed a second time.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::ExprWithAlias;
use planner::model::{Aggregate, AggregateColumn};

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("aggregate column \"{column}\" ({expr}): {source}")]
    Plan {
        column: String,
        expr: String,
        #[source]
        source: DataFusionError,
    },
    #[error("re-computing the groups in DataFusion: {0}")]
    DataFusion(#[from] DataFusionError),
}

/// The groups of `aggregate` over `rows`, source rows of `schema`: one row
/// per distinct key, its columns the keys then the values, named by their
/// destination columns. Rows of a group must all be given (a group is
/// re-computed whole, never merged with a previous result), which is what
/// makes `min`/`max` right after a delete.
pub async fn aggregate_batches(
    aggregate: &Aggregate,
    schema: SchemaRef,
    rows: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, ComputeError> {
    let ctx = SessionContext::new();
    let table = MemTable::try_new(schema, vec![rows])?;
    let df = ctx.read_table(Arc::new(table))?;
    let keys = logical_columns(&ctx, &df, &aggregate.keys)?;
    let values = logical_columns(&ctx, &df, &aggregate.values)?;
    Ok(df.aggregate(keys, values)?.collect().await?)
}

/// Every row of `batch` as `columns` compute it (a projection: one row out
/// per row in), each column named by its destination name.
pub async fn project(
    columns: &[AggregateColumn],
    batch: RecordBatch,
) -> Result<Vec<RecordBatch>, ComputeError> {
    let ctx = SessionContext::new();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    let df = ctx.read_table(Arc::new(table))?;
    let exprs = logical_columns(&ctx, &df, columns)?;
    Ok(df.select(exprs)?.collect().await?)
}

/// `columns`' parsed trees as DataFusion expressions over `df`'s rows,
/// each named by its destination column.
fn logical_columns(
    ctx: &SessionContext,
    df: &DataFrame,
    columns: &[AggregateColumn],
) -> Result<Vec<Expr>, ComputeError> {
    let state = ctx.state();
    columns
        .iter()
        .map(|c| {
            let tree = ExprWithAlias {
                expr: c.expr.expr().clone(),
                alias: None,
            };
            state
                .create_logical_expr_from_sql_expr(tree, df.schema())
                .map(|e| e.alias(&c.dest))
                .map_err(|source| ComputeError::Plan {
                    column: c.dest.clone(),
                    expr: c.expr.to_string(),
                    source,
                })
        })
        .collect()
}

mod changes;
mod grouping;

pub use changes::{group_changes, touched_keys, GroupChanges};
pub use grouping::Grouping;

#[cfg(test)]
mod tests;
