//! Partitions: half-open ranges over one or more source columns, aligned to a
//! fixed origin so the same row lands in the same partition on every run.

use std::fmt;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::column_ref::ColumnRef;
use crate::types::PartitionKind;

mod occupied;
pub use occupied::*;

/// A bound of a partition range. Datetimes are microseconds since the Unix
/// epoch (UTC for timestamptz, wall clock for timestamp and date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PartitionValue {
    Int(i64),
    Micros(i64),
}

impl PartitionValue {
    pub fn as_i64(&self) -> i64 {
        match self {
            PartitionValue::Int(v) | PartitionValue::Micros(v) => *v,
        }
    }
}

impl fmt::Display for PartitionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionValue::Int(v) => write!(f, "{v}"),
            PartitionValue::Micros(v) => write!(f, "{}", format_micros(*v)),
        }
    }
}

/// `2024-01-15T12:00:00` (fractional seconds only when present).
pub fn format_micros(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(dt) if micros % 1_000_000 == 0 => dt.format("%Y-%m-%dT%H:%M:%S").to_string(),
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        None => format!("{micros}us"),
    }
}

/// How one column is split into ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDimension {
    /// Destination-facing name used in partition ids.
    pub name: String,
    /// The source column the range applies to.
    pub column: ColumnRef,
    pub kind: PartitionKind,
    /// A `date` column: bounds are compared as whole days.
    pub date_only: bool,
    pub step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// A count of integer key values.
    Int(i64),
    /// A fixed duration in microseconds (seconds, minutes, hours, days, weeks).
    Micros(i64),
    /// Calendar months (a year is 12).
    Months(u32),
    /// One range from the lowest to the highest value (a delta window with
    /// no step of its own).
    Single,
}

/// The range of one dimension inside a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DimRange {
    /// `start <= column < end`.
    Range {
        start: PartitionValue,
        end: PartitionValue,
    },
    /// `column IS NULL`: rows no range can hold.
    Null,
    /// No restriction on this column.
    All,
}

/// One unit of work: a conjunction of ranges, one per dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Partition {
    /// Stable across runs: made from the dimension names and bounds.
    pub id: String,
    pub ranges: Vec<(PartitionDimensionRef, DimRange)>,
}

impl PartitionDimension {
    /// What a connector needs of this dimension to filter on it.
    pub fn to_ref(&self) -> PartitionDimensionRef {
        PartitionDimensionRef {
            name: self.name.clone(),
            column: self.column.clone(),
            kind: self.kind,
            date_only: self.date_only,
        }
    }
}

/// The part of a dimension a connector needs to filter on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionDimensionRef {
    pub name: String,
    pub column: ColumnRef,
    pub kind: PartitionKind,
    pub date_only: bool,
}

impl Partition {
    /// This partition with its first range starting at `lower` when that
    /// falls inside it, its id made anew: a delta's first window then
    /// starts at the watermark, not where its step aligns it.
    pub fn starting_at(mut self, lower: PartitionValue) -> Partition {
        if let Some((_, DimRange::Range { start, end })) = self.ranges.first_mut() {
            if *start < lower && lower < *end {
                *start = lower;
            }
        }
        self.id = self
            .ranges
            .iter()
            .map(|(d, r)| range_id(&d.name, r))
            .collect::<Vec<_>>()
            .join("__");
        self
    }

    /// The partition that holds every row.
    pub fn whole() -> Partition {
        Partition {
            id: "all".to_string(),
            ranges: Vec::new(),
        }
    }

    /// This partition cut finer along the dimensions of `finer` that it has
    /// a range on (the secondary partitions of a hash strategy). Returns
    /// just this partition when none applies.
    pub fn split_by(&self, finer: &[PartitionDimension]) -> Vec<Partition> {
        let mut per_dim: Vec<Vec<DimRange>> = Vec::with_capacity(self.ranges.len());
        let mut any = false;
        for (dim, range) in &self.ranges {
            let step = finer.iter().find(|f| f.name == dim.name).map(|f| f.step);
            match (step, range) {
                (Some(step), DimRange::Range { start, end })
                    if end.as_i64() - start.as_i64() > 1 =>
                {
                    let wrap = |v: i64| match start {
                        PartitionValue::Int(_) => PartitionValue::Int(v),
                        PartitionValue::Micros(_) => PartitionValue::Micros(v),
                    };
                    let last = wrap(end.as_i64() - 1);
                    // Aligned pieces, clipped to this partition's range.
                    let pieces = split(step, *start, last)
                        .into_iter()
                        .map(|r| match r {
                            DimRange::Range { start: s, end: e } => DimRange::Range {
                                start: s.max(*start),
                                end: e.min(*end),
                            },
                            other => other,
                        })
                        .collect::<Vec<_>>();
                    any |= pieces.len() > 1;
                    per_dim.push(pieces);
                }
                _ => per_dim.push(vec![range.clone()]),
            }
        }
        if !any {
            return vec![self.clone()];
        }
        let refs: Vec<PartitionDimensionRef> = self.ranges.iter().map(|(d, _)| d.clone()).collect();
        let mut out: Vec<Vec<DimRange>> = vec![Vec::new()];
        for ranges in &per_dim {
            out = out
                .iter()
                .flat_map(|prefix| {
                    ranges.iter().map(move |r| {
                        let mut p = prefix.clone();
                        p.push(r.clone());
                        p
                    })
                })
                .collect();
        }
        out.into_iter()
            .map(|ranges| {
                let ranges: Vec<_> = refs.iter().cloned().zip(ranges).collect();
                Partition {
                    id: ranges_id(&ranges),
                    ranges,
                }
            })
            .collect()
    }

    /// Two partitions splitting the first range that is wider than one
    /// value in half, for bisection; `None` when nothing can be split.
    pub fn halves(&self) -> Option<(Partition, Partition)> {
        let i = self.ranges.iter().position(|(_, r)| {
            matches!(r, DimRange::Range { start, end } if end.as_i64().saturating_sub(start.as_i64()) > 1)
        })?;
        let DimRange::Range { start, end } = self.ranges[i].1 else {
            return None;
        };
        let (a, b) = (start.as_i64(), end.as_i64());
        let mid = a + (b - a) / 2;
        Some((self.with_range(i, a, mid)?, self.with_range(i, mid, b)?))
    }

    /// This partition cut further by `range` of another column `dim` (a
    /// hash comparison cutting a range it cannot halve by the next key
    /// column).
    pub fn with_dimension(&self, dim: PartitionDimensionRef, range: DimRange) -> Partition {
        let mut ranges = self.ranges.clone();
        ranges.push((dim, range));
        Partition {
            id: ranges_id(&ranges),
            ranges,
        }
    }

    /// This partition with range `dim` narrowed to `start..end` (clipped to
    /// its own bounds); `None` when `dim` is not a range or nothing is left.
    pub fn with_range(&self, dim: usize, start: i64, end: i64) -> Option<Partition> {
        let DimRange::Range { start: s, end: e } = self.ranges.get(dim)?.1 else {
            return None;
        };
        let (start, end) = (start.max(s.as_i64()), end.min(e.as_i64()));
        if start >= end {
            return None;
        }
        let wrap = |v: i64| match s {
            PartitionValue::Int(_) => PartitionValue::Int(v),
            PartitionValue::Micros(_) => PartitionValue::Micros(v),
        };
        let mut ranges = self.ranges.clone();
        ranges[dim].1 = DimRange::Range {
            start: wrap(start),
            end: wrap(end),
        };
        Some(Partition {
            id: ranges_id(&ranges),
            ranges,
        })
    }
}

fn ranges_id(ranges: &[(PartitionDimensionRef, DimRange)]) -> String {
    ranges
        .iter()
        .map(|(d, r)| range_id(&d.name, r))
        .collect::<Vec<_>>()
        .join("__")
}

fn range_id(name: &str, r: &DimRange) -> String {
    match r {
        DimRange::Range { start, end } => format!("{name}_{start}_{end}"),
        DimRange::Null => format!("{name}_null"),
        DimRange::All => format!("{name}_all"),
    }
}

/// Observed extent of a column in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnBounds {
    /// `None` when every value is NULL (or the table is empty).
    pub min_max: Option<(PartitionValue, PartitionValue)>,
    pub has_nulls: bool,
}

/// Splits each dimension by its step and takes the cartesian product.
/// A table with no rows still gets no partitions; a dimension whose column has
/// NULLs gets an extra `IS NULL` range so those rows are never skipped.
pub fn plan_partitions(dims: &[PartitionDimension], bounds: &[ColumnBounds]) -> Vec<Partition> {
    let per_dim = dims
        .iter()
        .zip(bounds)
        .map(|(dim, b)| dimension_ranges(dim, b))
        .collect::<Vec<_>>();
    product(dims, per_dim)
}

/// The ranges of one dimension over its observed bounds, plus `IS NULL`
/// when the column has NULLs.
pub fn dimension_ranges(dim: &PartitionDimension, b: &ColumnBounds) -> Vec<DimRange> {
    let mut ranges = match b.min_max {
        Some((min, max)) => split(dim.step, min, max),
        None => Vec::new(),
    };
    if b.has_nulls {
        ranges.push(DimRange::Null);
    }
    ranges
}

/// Every combination of one range per dimension, as partitions.
pub fn product(dims: &[PartitionDimension], per_dim: Vec<Vec<DimRange>>) -> Vec<Partition> {
    if dims.is_empty() {
        return vec![Partition::whole()];
    }
    let mut out: Vec<Vec<DimRange>> = vec![Vec::new()];
    for ranges in &per_dim {
        let mut next = Vec::with_capacity(out.len() * ranges.len());
        for prefix in &out {
            for r in ranges {
                let mut p = prefix.clone();
                p.push(r.clone());
                next.push(p);
            }
        }
        out = next;
    }
    out.into_iter()
        .map(|ranges| partition_of(dims, ranges))
        .collect()
}

/// The partition of one range per dimension of `dims`.
fn partition_of(dims: &[PartitionDimension], ranges: Vec<DimRange>) -> Partition {
    Partition {
        id: partition_id(dims, &ranges),
        ranges: dims
            .iter()
            .map(PartitionDimension::to_ref)
            .zip(ranges)
            .collect(),
    }
}

/// The ranges of a delta cursor: from `lower` (the stored watermark minus
/// the lookback, inclusive; `None` on a first run: the column's minimum) up
/// to and including the source's current maximum. An empty window (the
/// watermark is past every row) gives no range.
pub fn delta_window(
    cursor: &PartitionDimension,
    lower: Option<PartitionValue>,
    bounds: &ColumnBounds,
) -> Vec<DimRange> {
    let mut ranges = match bounds.min_max {
        Some((min, max)) => {
            let start = lower.map_or(min, |l| l.max(min));
            if start > max {
                Vec::new()
            } else {
                split(cursor.step, start, max)
            }
        }
        None => Vec::new(),
    };
    if bounds.has_nulls {
        ranges.push(DimRange::Null);
    }
    ranges
}

fn partition_id(dims: &[PartitionDimension], ranges: &[DimRange]) -> String {
    dims.iter()
        .zip(ranges)
        .map(|(d, r)| range_id(&d.name, r))
        .collect::<Vec<_>>()
        .join("__")
}

/// Months since January 1970 of the month holding `micros`.
fn month_index(micros: i64) -> i64 {
    // Past chrono's range, the first or last month it can name: not 1970,
    // which would count (and split) from there.
    let dt = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    (dt.year() as i64 - 1970) * 12 + dt.month0() as i64
}

/// The most partitions one run takes. A sparse key over a wide span (ids
/// far apart, a fine step over decades) would otherwise plan billions of
/// mostly empty ranges and spend the run, and its memory, on bookkeeping.
pub const MAX_PARTITIONS: u128 = 1_000_000;

/// How many ranges [`split`] makes of `[min, max]`, without making them.
pub fn range_count(step: Step, min: PartitionValue, max: PartitionValue) -> u128 {
    let (lo, hi) = (i128::from(min.as_i64()), i128::from(max.as_i64()));
    let aligned = |lo: i128, hi: i128, n: i128| {
        let start = lo.div_euclid(n) * n;
        if hi < start {
            0
        } else {
            ((hi - start) / n + 1) as u128
        }
    };
    match step {
        Step::Single => u128::from(hi >= lo),
        Step::Int(n) | Step::Micros(n) => aligned(lo, hi, i128::from(n.max(1))),
        Step::Months(n) => aligned(
            i128::from(month_index(min.as_i64())),
            i128::from(month_index(max.as_i64())),
            i128::from(n.max(1)),
        ),
    }
}

/// Why the partitions of `dims` over `bounds` are too many to run (more
/// than [`MAX_PARTITIONS`]), naming the dimension with the most ranges and,
/// for an integer one, the least step that would do; `None` when they fit.
pub fn too_many_partitions(dims: &[PartitionDimension], bounds: &[ColumnBounds]) -> Option<String> {
    let counts: Vec<u128> = dims
        .iter()
        .zip(bounds)
        .map(|(d, b)| {
            b.min_max.map_or(0, |(lo, hi)| range_count(d.step, lo, hi)) + u128::from(b.has_nulls)
        })
        .collect();
    let total = counts.iter().fold(1u128, |acc, c| acc.saturating_mul(*c));
    if total <= MAX_PARTITIONS {
        return None;
    }
    let (widest, &count) = counts.iter().enumerate().max_by_key(|&(_, c)| *c)?;
    let (dim, (lo, hi)) = (&dims[widest], bounds[widest].min_max?);
    let step = match dim.step {
        Step::Int(n) => n.to_string(),
        Step::Micros(n) => format!("{} seconds", n / 1_000_000),
        Step::Months(n) => format!("{n} months"),
        Step::Single => "one range".to_string(),
    };
    let advice = match dim.step {
        Step::Int(n) => {
            // Room left for this dimension once the others take theirs.
            let room = (MAX_PARTITIONS / (total / count).max(1)).max(1);
            let span = (i128::from(hi.as_i64()) - i128::from(lo.as_i64()) + 1) as u128;
            let mut least = nice_step(span.div_ceil(room).max(n as u128 + 1));
            // Ranges are aligned to multiples of the step: one more may be needed.
            while least < i64::MAX as u128 && range_count(Step::Int(least as i64), lo, hi) > room {
                least = nice_step(least + 1);
            }
            format!(
                "raise its step to at least {least} (partition_step, or step in primary_partitions); every range costs its queries, even an empty one"
            )
        }
        _ => "use a longer step or step_unit".to_string(),
    };
    Some(format!(
        "partitioning on \"{}\" in steps of {step} from {lo} to {hi} makes {total} partitions, more than the {MAX_PARTITIONS} a run can take; {advice}",
        dim.name
    ))
}

/// Why a run whose ranges holding rows are more than [`MAX_PARTITIONS`]
/// is refused, naming its dimensions.
pub fn too_many_occupied(dims: &[PartitionDimension]) -> String {
    let names: Vec<String> = dims.iter().map(|d| format!("\"{}\"", d.name)).collect();
    format!(
        "partitioning on {} puts rows in more than the {MAX_PARTITIONS} partitions a run can take; raise its step (partition_step, or step in primary_partitions)",
        names.join(", ")
    )
}

/// The least of 1, 2 or 5 times a power of ten that is at least `n`.
fn nice_step(n: u128) -> u128 {
    let mut unit = 1u128;
    loop {
        for m in [1, 2, 5] {
            if unit * m >= n {
                return unit * m;
            }
        }
        unit *= 10;
    }
}

/// The first microsecond of month `idx` (months since January 1970);
/// `None` past the dates chrono can name (years ±262,143; a PostgreSQL
/// timestamp goes to 294,276).
fn month_start(idx: i64) -> Option<i64> {
    let base = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let date = if idx >= 0 {
        base.checked_add_months(Months::new(u32::try_from(idx).ok()?))
    } else {
        base.checked_sub_months(Months::new(u32::try_from(-idx).ok()?))
    }?;
    Some(
        Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
            .timestamp_micros(),
    )
}

/// Aligned half-open ranges covering `[min, max]`.
fn split(step: Step, min: PartitionValue, max: PartitionValue) -> Vec<DimRange> {
    let mut out = Vec::new();
    let wrap = |v: i64| match min {
        PartitionValue::Int(_) => PartitionValue::Int(v),
        PartitionValue::Micros(_) => PartitionValue::Micros(v),
    };
    match step {
        Step::Single => out.push(DimRange::Range {
            start: min,
            end: wrap(max.as_i64().saturating_add(1)),
        }),
        Step::Int(n) | Step::Micros(n) => {
            // In i128: the aligned start below a minimum near i64::MIN, and
            // the end past a maximum near i64::MAX, do not fit an i64; the
            // outermost ranges are clamped to it instead.
            let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            let n = i128::from(n.max(1));
            let mut start = i128::from(min.as_i64()).div_euclid(n) * n;
            let max = i128::from(max.as_i64());
            while start <= max {
                let end = start + n;
                out.push(DimRange::Range {
                    start: wrap(clamp(start)),
                    end: wrap(clamp(end)),
                });
                if end >= i128::from(i64::MAX) {
                    break;
                }
                start = end;
            }
        }
        Step::Months(n) => {
            let n = n.max(1) as i64;
            let mut idx = month_index(min.as_i64()).div_euclid(n) * n;
            let max = max.as_i64();
            while let Some(start) = month_start(idx) {
                if start > max {
                    break;
                }
                // The last month chrono can name runs to the end of time.
                let end = month_start(idx + n).unwrap_or(i64::MAX);
                out.push(DimRange::Range {
                    start: PartitionValue::Micros(start),
                    end: PartitionValue::Micros(end),
                });
                if end == i64::MAX {
                    break;
                }
                idx += n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
