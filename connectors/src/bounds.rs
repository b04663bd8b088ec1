//! Bounds of partition columns computed from Arrow values: the memory
//! connector's, and any source's within a partition when it has no query
//! of its own for them.

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use futures_util::StreamExt;
use planner::partition::{ColumnBounds, Partition, PartitionDimension, PartitionValue};
use planner::types::PartitionKind;

use crate::{ConnectorError, Result, Source};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A partition column's values as the integers its bounds are: integers as
/// such, datetimes as microseconds since the epoch.
pub fn as_bound_values(values: &ArrayRef, kind: PartitionKind) -> Result<Vec<Option<i64>>> {
    let ints = match (kind, values.data_type()) {
        (PartitionKind::Datetime, DataType::Date32) => values
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.map(|d| i64::from(d) * MICROS_PER_DAY))
            .collect(),
        (PartitionKind::Datetime, _) => {
            let micros = cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            micros
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect()
        }
        (PartitionKind::Integer, _) => cast(values, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .iter()
            .collect(),
    };
    Ok(ints)
}

/// A bound of a `kind` dimension.
pub fn bound(kind: PartitionKind, v: i64) -> PartitionValue {
    match kind {
        PartitionKind::Integer => PartitionValue::Int(v),
        PartitionKind::Datetime => PartitionValue::Micros(v),
    }
}

/// `acc` widened to hold `values` too.
pub fn widen(acc: &mut ColumnBounds, values: &[Option<i64>], kind: PartitionKind) {
    for v in values {
        match v {
            None => acc.has_nulls = true,
            Some(v) => {
                let v = bound(kind, *v);
                acc.min_max = Some(match acc.min_max {
                    None => (v, v),
                    Some((lo, hi)) => (lo.min(v), hi.max(v)),
                });
            }
        }
    }
}

/// The bounds of two sets of rows together.
pub fn union(a: ColumnBounds, b: ColumnBounds) -> ColumnBounds {
    ColumnBounds {
        min_max: match (a.min_max, b.min_max) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (a, b) => a.or(b),
        },
        has_nulls: a.has_nulls || b.has_nulls,
    }
}

/// `Source::bounds_within` by reading the partition's rows: each dimension
/// is the mapped column of its name (a dimension's destination name).
pub async fn bounds_by_reading<S: Source + ?Sized>(
    source: &mut S,
    partition: &Partition,
    dims: &[PartitionDimension],
) -> Result<Vec<ColumnBounds>> {
    let at: Vec<usize> = dims
        .iter()
        .map(|d| {
            source
                .columns()
                .iter()
                .position(|c| c.dest == d.name)
                .ok_or_else(|| {
                    ConnectorError::Other(format!("no mapped column \"{}\" to bound", d.name))
                })
        })
        .collect::<Result<_>>()?;
    let mut out = vec![
        ColumnBounds {
            min_max: None,
            has_nulls: false,
        };
        dims.len()
    ];
    let mut rows = source.read(partition, 50_000).await?;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        for ((d, i), acc) in dims.iter().zip(&at).zip(&mut out) {
            widen(acc, &as_bound_values(batch.column(*i), d.kind)?, d.kind);
        }
    }
    Ok(out)
}

/// Rows counted by the combination of ranges (`grids`' buckets) their
/// dimension values fall in, as `Source::occupied_buckets` answers.
#[derive(Default)]
pub struct OccupiedCount {
    seen: std::collections::BTreeMap<Vec<Option<i64>>, u64>,
}

impl OccupiedCount {
    /// Counts the rows `rows` of `values` (one vector per dimension);
    /// false once more than `limit` combinations are seen, when the caller
    /// stops.
    pub fn add(
        &mut self,
        values: &[Vec<Option<i64>>],
        grids: &[planner::partition::BucketGrid],
        rows: impl Iterator<Item = usize>,
        limit: usize,
    ) -> bool {
        for row in rows {
            let key = values
                .iter()
                .zip(grids)
                .map(|(v, grid)| v[row].map(|v| grid.bucket_of(v)))
                .collect();
            *self.seen.entry(key).or_insert(0) += 1;
            if self.seen.len() > limit {
                return false;
            }
        }
        true
    }

    pub fn finish(self) -> planner::partition::OccupiedBuckets {
        self.seen
            .into_iter()
            .map(|(buckets, rows)| planner::partition::OccupiedBucket { buckets, rows })
            .collect()
    }
}
