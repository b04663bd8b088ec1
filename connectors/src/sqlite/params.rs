//! Partition bounds as SQLite compares them, and bounds read back from a
//! min/max query.

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use planner::partition::{format_micros, Partition, PartitionDimension, PartitionValue};
use planner::types::{ColumnType, PartitionKind};
use rusqlite::types::{Value, ValueRef};

use super::codec::ColumnDecoder;
use crate::{ConnectorError, Result};

/// A partition bound as SQLite compares it: integers as such, datetimes as
/// the canonical text SyncHub stores (so text order is time order).
fn bound_value(v: PartitionValue, date_only: bool) -> Value {
    match v {
        PartitionValue::Int(i) => Value::Integer(i),
        PartitionValue::Micros(m) => {
            let text = format_micros(m);
            if date_only {
                // Whole days, rounded up: for dates `d >= ceil(b)` equals `d >= b`.
                let day = 86_400_000_000i64;
                let up = m.div_euclid(day) * day + if m.rem_euclid(day) != 0 { day } else { 0 };
                Value::Text(format_micros(up)[..10].to_string())
            } else {
                // format_micros gives 2024-01-15T12:00:00[.ffffff]; stored form uses a space and 6 digits.
                let (date, time) = text.split_once('T').unwrap_or((&text, "00:00:00"));
                let time = if time.len() == 8 {
                    format!("{time}.000000")
                } else {
                    time.to_string()
                };
                Value::Text(format!("{date} {time}"))
            }
        }
    }
}

pub(crate) fn bound_params(partition: &Partition, params: &[PartitionValue]) -> Vec<Value> {
    // where_sql pushes two values per Range dimension, in dimension order.
    let mut out = Vec::with_capacity(params.len());
    let mut it = params.iter();
    for (dim, range) in &partition.ranges {
        if matches!(range, planner::partition::DimRange::Range { .. }) {
            for _ in 0..2 {
                if let Some(v) = it.next() {
                    out.push(bound_value(*v, dim.date_only));
                }
            }
        }
    }
    out
}

pub(crate) fn bound_from_sqlite(
    dim: &PartitionDimension,
    v: ValueRef<'_>,
) -> Result<Option<PartitionValue>> {
    if v == ValueRef::Null {
        return Ok(None);
    }
    match dim.kind {
        PartitionKind::Integer => match v {
            ValueRef::Integer(i) => Ok(Some(PartitionValue::Int(i))),
            other => Err(ConnectorError::Schema(format!(
                "partition column {} holds {:?}, not an integer",
                dim.column,
                other.data_type()
            ))),
        },
        PartitionKind::Datetime => {
            let ty = if dim.date_only {
                ColumnType::Date
            } else {
                ColumnType::Timestamp
            };
            let mut dec = ColumnDecoder::new(&ty);
            dec.push(v).map_err(|e| {
                ConnectorError::Schema(format!("partition column {}: {e}", dim.column))
            })?;
            let array = dec.finish();
            let micros = if dim.date_only {
                array
                    .as_primitive::<arrow::datatypes::Date32Type>()
                    .value(0) as i64
                    * 86_400_000_000
            } else {
                array.as_primitive::<TimestampMicrosecondType>().value(0)
            };
            Ok(Some(PartitionValue::Micros(micros)))
        }
    }
}
