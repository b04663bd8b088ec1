//! The one conformance layer between Arrow and the configured column types,
//! used by every codec and by the row hash: which Arrow type a configured
//! `data_type` is ([`ColumnType::arrow_type`]), which other Arrow types are
//! read as it and how ([`conform_array`], [`conform_batch`]), and that every
//! value fits its column ([`check_fits`]), so a value is never truncated or
//! rounded silently; errors name the row's key.

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Decimal128Type, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use planner::types::{arrow_schema, ColumnSpec, ColumnType};

use crate::{ConnectorError, Result};

/// How values of an Arrow type are read as a configured type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    /// Already the configured type's Arrow type.
    Exact,
    /// The same values under another time zone label: UTC micros either way.
    RelabelUtc,
    /// Converted value by value, failing on a value that does not fit
    /// (an integer out of range, a decimal wider than its precision).
    Checked,
}

/// How `have` values are read as `ty`, `None` when they cannot be without
/// loss (another scale of decimal, nanoseconds, text for numbers...).
fn conversion(have: &DataType, ty: &ColumnType) -> Option<Conversion> {
    use DataType::*;
    let want = ty.arrow_type();
    if *have == want {
        return Some(Conversion::Exact);
    }
    let checked = match (have, &want) {
        (Timestamp(TimeUnit::Microsecond, Some(_)), Timestamp(TimeUnit::Microsecond, Some(_))) => {
            return Some(Conversion::RelabelUtc)
        }
        (Utf8View | LargeUtf8, Utf8) | (BinaryView | LargeBinary, Binary) => true,
        (Dictionary(_, values), Utf8) => matches!(**values, Utf8 | LargeUtf8 | Utf8View),
        (
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64,
            Int16 | Int32 | Int64,
        ) => true,
        (Float16 | Float32, Float64) | (Float16, Float32) => true,
        (Decimal128(_, s1), Decimal128(_, s2)) => s1 <= s2,
        (Time32(_), Time64(TimeUnit::Microsecond)) => true,
        (
            Timestamp(TimeUnit::Second | TimeUnit::Millisecond, a),
            Timestamp(TimeUnit::Microsecond, b),
        ) => a.is_some() == b.is_some(),
        _ => false,
    };
    checked.then_some(Conversion::Checked)
}

/// Whether values of Arrow type `have` can be read as `ty`
/// ([`conform_array`] then converts them or fails on a value).
pub fn conformable(have: &DataType, ty: &ColumnType) -> bool {
    conversion(have, ty).is_some()
}

/// `array` as `ty.arrow_type()`: as it is when it already is one (no copy),
/// else converted without loss: narrower or unsigned integers (failing on
/// a value out of range), other string and binary layouts, smaller floats,
/// decimals of a smaller scale or of another precision (failing on a value
/// wider than the column's), seconds or milliseconds, any time zone for
/// `timestamptz` (values are UTC micros either way). Anything else is a
/// `Schema` error.
pub fn conform_array(array: &ArrayRef, ty: &ColumnType) -> Result<ArrayRef> {
    let have = array.data_type();
    let want = ty.arrow_type();
    match conversion(have, ty) {
        Some(Conversion::Exact) => Ok(array.clone()),
        Some(Conversion::RelabelUtc) => Ok(std::sync::Arc::new(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone("UTC"),
        )),
        Some(Conversion::Checked) => {
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(array, &want, &options).map_err(|e| {
                ConnectorError::Value(format!("cannot read {have} values as {ty}: {e}"))
            })
        }
        None => Err(ConnectorError::Schema(format!(
            "expected Arrow {want} values for a {ty} column, found {have}"
        ))),
    }
}

/// `batch` (column `i` holding `columns[i]`) in the configured types'
/// Arrow schema: borrowed as it is when every column already is (the
/// batches sources read), else with its columns conformed
/// ([`conform_array`]); a column's error names it.
pub fn conform_batch<'a>(
    batch: &'a RecordBatch,
    columns: &[ColumnSpec],
) -> Result<Cow<'a, RecordBatch>> {
    if batch.num_columns() != columns.len() {
        return Err(ConnectorError::Schema(format!(
            "the batch has {} columns, the table {}",
            batch.num_columns(),
            columns.len()
        )));
    }
    let exact = batch
        .columns()
        .iter()
        .zip(columns)
        .all(|(a, c)| *a.data_type() == c.data_type.arrow_type());
    if exact {
        return Ok(Cow::Borrowed(batch));
    }
    let arrays = batch
        .columns()
        .iter()
        .zip(columns)
        .map(|(a, c)| {
            conform_array(a, &c.data_type).map_err(|e| match e {
                ConnectorError::Schema(msg) => {
                    ConnectorError::Schema(format!("column \"{}\": {msg}", c.name))
                }
                ConnectorError::Value(msg) => {
                    ConnectorError::Value(format!("column \"{}\": {msg}", c.name))
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Cow::Owned(RecordBatch::try_new(
        arrow_schema(columns),
        arrays,
    )?))
}

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
