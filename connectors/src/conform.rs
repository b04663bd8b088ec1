//! Checks that every value of a batch fits its destination column, so a value
//! is never truncated or rounded silently, and errors name the row's key.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use planner::types::{ColumnSpec, ColumnType};

use crate::{ConnectorError, Result};

/// `id=42` or `user_id=7, date=2024-01-15`: the upsert key of `row`.
pub fn row_key(batch: &RecordBatch, columns: &[ColumnSpec], row: usize) -> String {
    let opts = FormatOptions::default().with_null("NULL");
    let mut parts = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if !c.unique || i >= batch.num_columns() {
            continue;
        }
        let value = ArrayFormatter::try_new(batch.column(i).as_ref(), &opts)
            .map(|f| f.value(row).to_string())
            .unwrap_or_else(|_| "?".to_string());
        parts.push(format!("{}={}", c.name, value));
    }
    if parts.is_empty() {
        format!("#{row} of its batch")
    } else {
        parts.join(", ")
    }
}

/// The error for a value of `row` in `column` that cannot be written.
pub fn value_error(
    batch: &RecordBatch,
    columns: &[ColumnSpec],
    row: usize,
    column: &str,
    message: &str,
) -> ConnectorError {
    ConnectorError::Value(format!(
        "row {}, column \"{column}\": {message}",
        row_key(batch, columns, row)
    ))
}

/// Two source rows with one key (`rows` says which: "two source rows have
/// the key id=2"): the destination keeps one row a key, so syncing them
/// would drop one of the two.
pub fn duplicate_key(rows: &str) -> ConnectorError {
    ConnectorError::Value(format!(
        "{rows}: the unique_column values must identify one row each; \
         remove the duplicates from the source or map columns that are unique as unique_column"
    ))
}

/// A batch of decoded columns in the destination's schema. A NULL in a
/// unique column is named (column and row) instead of Arrow's "declared as
/// non-nullable but contains null values".
pub fn keyed_batch(
    schema: SchemaRef,
    arrays: Vec<ArrayRef>,
    columns: &[ColumnSpec],
) -> Result<RecordBatch> {
    for (c, array) in columns.iter().zip(&arrays) {
        if c.unique && array.null_count() > 0 {
            let row = (0..array.len()).find(|&r| array.is_null(r)).unwrap_or(0);
            return Err(ConnectorError::NullKey {
                column: c.name.clone(),
                row,
            });
        }
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// Fails on the first value longer than its varchar or wider than its decimal.
pub fn check_fits(batch: &RecordBatch, columns: &[ColumnSpec]) -> Result<()> {
    for (i, c) in columns.iter().enumerate() {
        let array = batch.column(i);
        match c.data_type {
            ColumnType::String { max_len: Some(n) } => {
                let strings = array.as_string::<i32>();
                for row in 0..strings.len() {
                    if strings.is_null(row) {
                        continue;
                    }
                    let v = strings.value(row);
                    // Byte length bounds the char count: only count when it may exceed.
                    if v.len() > n as usize {
                        let chars = v.chars().count();
                        if chars > n as usize {
                            return Err(value_error(
                                batch,
                                columns,
                                row,
                                &c.name,
                                &format!("value of {chars} characters does not fit varchar({n})"),
                            ));
                        }
                    }
                }
            }
            ColumnType::Decimal { precision, scale } => {
                let decimals = array.as_primitive::<Decimal128Type>();
                let limit = 10i128.pow(precision as u32);
                for row in 0..decimals.len() {
                    if decimals.is_null(row) {
                        continue;
                    }
                    let v = decimals.value(row);
                    if v >= limit || v <= -limit {
                        let text = arrow::array::Decimal128Array::from(vec![v])
                            .with_precision_and_scale(38, scale)
                            .map(|a| a.value_as_string(0))
                            .unwrap_or_else(|_| v.to_string());
                        return Err(value_error(
                            batch,
                            columns,
                            row,
                            &c.name,
                            &format!("value {text} does not fit decimal({precision},{scale})"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
