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
                // format_micros gives 2024-01-15T12:00:00[.ffffff]; the stored
                // form has a space. A whole second is bound without a fraction:
                // text order then places both `12:00:00.000000` (as SyncHub
                // writes) and `12:00:00` (as most writers do) on the bound, where
                // `12:00:00.000000` would put the shorter text before it and a
                // row on a window's start in no window at all.
                let (date, time) = text.split_once('T').unwrap_or((&text, "00:00:00"));
                Value::Text(format!("{date} {time}"))
            }
        }
    }
}

pub(crate) fn bound_params(partition: &Partition, params: &[PartitionValue]) -> Vec<Value> {
    // where_sql pushes two values per Range dimension, in dimension order;
    // an aggregate's select binds the ranges twice (its semi-join and its
    // NULL keys), so the dimensions are gone through again.
    let dims: Vec<_> = partition
        .ranges
        .iter()
        .filter(|(_, range)| matches!(range, planner::partition::DimRange::Range { .. }))
        .map(|(dim, _)| dim.date_only)
        .collect();
    if dims.is_empty() {
        return Vec::new();
    }
    params
        .iter()
        .enumerate()
        .map(|(i, v)| bound_value(*v, dims[(i / 2) % dims.len()]))
        .collect()
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
