//! Partitions: half-open ranges over one or more source columns, aligned to a
//! fixed origin so the same row lands in the same partition on every run.

use std::fmt;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::column_ref::ColumnRef;
use crate::types::PartitionKind;

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

/// What a source computes of a row to tell which aligned range of a
/// dimension it falls in (see [`BucketGrid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketKey {
    /// Every row in bucket 0: a dimension of one range.
    Whole,
    /// The integer value itself.
    Value,
    /// Whole seconds since the Unix epoch (UTC for timestamptz, wall clock
    /// for timestamp and date). Fixed datetime steps are whole seconds and
    /// aligned to the epoch, so a range never starts inside a second and the
    /// fraction can be dropped.
    EpochSeconds,
    /// Months since January 1970 (of the UTC or wall-clock date).
    Month,
}

/// The aligned ranges of one dimension over a span, numbered from 0, so a
/// source can say which of them hold rows without the ranges being made:
/// a value's bucket is `(key(value) - origin) / width` (integer division;
/// never negative within the span), and bucket `b` is the `b`-th range
/// [`split`] makes of the span, with the same bounds and so the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketGrid {
    pub key: BucketKey,
    pub origin: i64,
    pub width: i64,
    /// How many ranges the span has (`range_count`).
    pub count: u128,
    /// The span's first value: the range of a [`BucketKey::Whole`] grid
    /// starts there.
    min: PartitionValue,
    max: PartitionValue,
}

const MICROS_PER_SECOND: i64 = 1_000_000;

impl BucketGrid {
    /// The grid of `step` over `[min, max]`; `None` when its arithmetic
    /// would not fit 64 bits (ranges clamped at the ends of i64, months
    /// past chrono's calendar) or a fixed step is not whole seconds: such a
    /// dimension is planned range by range.
    pub fn of(step: Step, min: PartitionValue, max: PartitionValue) -> Option<BucketGrid> {
        let count = range_count(step, min, max);
        let fits = |v: i128| i64::try_from(v).ok();
        let (key, origin, width) = match step {
            Step::Single => (BucketKey::Whole, 0, 1),
            Step::Int(n) => {
                let n = i128::from(n.max(1));
                let first = i128::from(min.as_i64()).div_euclid(n) * n;
                // The last range's end, and so every value's distance from
                // the first start, must fit.
                fits(first + n * count as i128 - first)?;
                fits(first + n * count as i128)?;
                (BucketKey::Value, fits(first)?, fits(n)?)
            }
            Step::Micros(n) => {
                if n <= 0 || n % MICROS_PER_SECOND != 0 {
                    return None;
                }
                let n = i128::from(n);
                let first = i128::from(min.as_i64()).div_euclid(n) * n;
                fits(first)?;
                fits(first + n * count as i128)?;
                let second = i128::from(MICROS_PER_SECOND);
                (
                    BucketKey::EpochSeconds,
                    fits(first / second)?,
                    fits(n / second)?,
                )
            }
            Step::Months(n) => {
                let n = i64::from(n.max(1));
                let first = month_index(min.as_i64()).div_euclid(n) * n;
                month_start(first + n * i64::try_from(count).ok()?)?;
                month_start(first)?;
                (BucketKey::Month, first, n)
            }
        };
        Some(BucketGrid {
            key,
            origin,
            width,
            count,
            min,
            max,
        })
    }

    /// The bucket of a value (an integer, or microseconds since the epoch),
    /// as a source computes it.
    pub fn bucket_of(&self, value: i64) -> i64 {
        let key = match self.key {
            BucketKey::Whole => return 0,
            BucketKey::Value => value,
            BucketKey::EpochSeconds => value.div_euclid(MICROS_PER_SECOND),
            BucketKey::Month => month_index(value),
        };
        (i128::from(key) - i128::from(self.origin)).div_euclid(i128::from(self.width)) as i64
    }

    /// The `b`-th range of the span; `None` outside it.
    pub fn range(&self, b: i64) -> Option<DimRange> {
        if b < 0 || b as u128 >= self.count {
            return None;
        }
        let wrap = |v: i64| match self.min {
            PartitionValue::Int(_) => PartitionValue::Int(v),
            PartitionValue::Micros(_) => PartitionValue::Micros(v),
        };
        let (start, end) = match self.key {
            BucketKey::Whole => (self.min.as_i64(), self.max.as_i64().saturating_add(1)),
            BucketKey::Value => (
                self.origin + b * self.width,
                self.origin + (b + 1) * self.width,
            ),
            BucketKey::EpochSeconds => (
                (self.origin + b * self.width) * MICROS_PER_SECOND,
                (self.origin + (b + 1) * self.width) * MICROS_PER_SECOND,
            ),
            BucketKey::Month => (
                month_start(self.origin + b * self.width)?,
                month_start(self.origin + (b + 1) * self.width)?,
            ),
        };
        Some(DimRange::Range {
            start: wrap(start),
            end: wrap(end),
        })
    }

    /// The whole span as one range: what a source is asked about.
    pub fn span(&self) -> Option<DimRange> {
        let last = i64::try_from(self.count.checked_sub(1)?).ok()?;
        match (self.range(0)?, self.range(last)?) {
            (DimRange::Range { start, .. }, DimRange::Range { end, .. }) => {
                Some(DimRange::Range { start, end })
            }
            _ => None,
        }
    }
}

/// One combination of ranges holding rows, as a source answers: a bucket
/// per dimension (`None` for NULL) and how many rows it holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OccupiedBucket {
    pub buckets: Vec<Option<i64>>,
    pub rows: u64,
}

/// Which buckets hold rows, as a source answers: one combination per entry.
pub type OccupiedBuckets = Vec<OccupiedBucket>;

/// When neighbouring ranges holding rows become one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    /// A merged partition holds at most this many rows; a range holding
    /// more stays alone.
    pub max_rows: u64,
    /// Merge only when more ranges than this hold rows.
    pub above_partitions: usize,
}

/// Ranges holding rows merge into partitions of at most 50,000 rows: a
/// partition's fixed cost (its queries, its checkpoint; about 1 ms on local
/// servers) then weighs nothing beside its rows, and redoing one after a
/// failure reads a fraction of a second of rows, so coarser resume points
/// lose nothing that matters. A range holding more is never merged, so a
/// dense table plans exactly as its step says. At most 100 ranges holding
/// rows cost at most some 0.1 s of fixed cost, and keep the resume points
/// the step asked for.
pub const MERGE_SMALL_RANGES: MergePolicy = MergePolicy {
    max_rows: 50_000,
    above_partitions: 100,
};

/// A delta's window past its watermark merges from two ranges up: its
/// rows are the few changed since, and each partition is a transaction
/// and a commit of its own (a 1% change spread over 21 ranges took 21).
pub const MERGE_DELTA_WINDOW: MergePolicy = MergePolicy {
    max_rows: MERGE_SMALL_RANGES.max_rows,
    above_partitions: 1,
};

/// The partitions a run takes of the occupied buckets, and how many ranges
/// held rows (more than the partitions when neighbours were merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupiedPlan {
    pub partitions: Vec<Partition>,
    pub ranges_holding_rows: usize,
}

/// The partitions of the occupied buckets `keys` (a bucket per dimension of
/// `dims` under `grids`, `None` for NULL), in the order [`product`] gives
/// them and with the same ids. Buckets outside a grid, and NULLs of a
/// dimension whose ranges have no `IS NULL` one (`nulls`), were not there
/// when the bounds were read and are left out, as the dense plan would. A
/// combination named twice (by a source and a destination) holds the larger
/// of its counts.
///
/// Past `merge.above_partitions` of them, neighbouring ranges of the first
/// dimension whose ranges differ (a delta's cursor, or the next one when
/// the cursor is a single range) merge while they agree on every other
/// dimension's range and hold at most `merge.max_rows` together: the first
/// dimension is the one a span is ordered and usually sparse along, and
/// merging along one dimension keeps every partition a product of ranges.
/// A merged range runs from its first range's start to its last one's end
/// (the empty ranges between hold no rows), so it stays aligned to the
/// step and its id is made as any other's; an `IS NULL` range is never
/// merged. The same rows per range give the same partitions.
pub fn occupied_partitions(
    dims: &[PartitionDimension],
    grids: &[BucketGrid],
    nulls: &[bool],
    keys: OccupiedBuckets,
    merge: MergePolicy,
) -> OccupiedPlan {
    // `product` puts each dimension's ranges in order, its IS NULL last.
    let order = |k: &[Option<i64>]| -> Vec<(bool, i64)> {
        k.iter().map(|b| (b.is_none(), b.unwrap_or(0))).collect()
    };
    let in_plan = |k: &[Option<i64>]| {
        k.len() == dims.len()
            && k.iter()
                .zip(grids.iter().zip(nulls))
                .all(|(b, (grid, nulls))| match b {
                    Some(b) => grid.range(*b).is_some(),
                    None => *nulls,
                })
    };
    let mut keys: Vec<OccupiedBucket> = keys.into_iter().filter(|k| in_plan(&k.buckets)).collect();
    keys.sort_unstable_by_key(|k| order(&k.buckets));
    let mut held: Vec<OccupiedBucket> = Vec::with_capacity(keys.len());
    for key in keys {
        match held.last_mut() {
            Some(last) if last.buckets == key.buckets => last.rows = last.rows.max(key.rows),
            _ => held.push(key),
        }
    }
    let ranges_holding_rows = held.len();
    let range_of = |dim: usize, b: Option<i64>| match b {
        Some(b) => grids[dim].range(b),
        None => Some(DimRange::Null),
    };
    let partitions = if dims.is_empty() || held.len() <= merge.above_partitions {
        held.into_iter()
            .filter_map(|k| {
                let ranges = (0..dims.len())
                    .map(|i| range_of(i, k.buckets[i]))
                    .collect::<Option<Vec<_>>>()?;
                Some(partition_of(dims, ranges))
            })
            .collect()
    } else {
        // Along the first dimension whose ranges differ: a delta window's
        // cursor is one range when it has no step of its own, and its rows
        // then spread over the ranges of the next.
        let axis = (0..dims.len())
            .find(|&i| held.iter().any(|k| k.buckets[i] != held[0].buckets[i]))
            .unwrap_or(0);
        let to_front = |mut buckets: Vec<Option<i64>>| {
            buckets.swap(0, axis);
            buckets
        };
        let held = held
            .into_iter()
            .map(|k| OccupiedBucket {
                buckets: to_front(k.buckets),
                rows: k.rows,
            })
            .collect();
        let mut runs: Vec<(Vec<Option<i64>>, Option<i64>)> =
            merge_first_dimension(held, merge.max_rows)
                .into_iter()
                .map(|run| {
                    let mut first = vec![run.first];
                    first.extend(run.rest);
                    (to_front(first), run.last)
                })
                .collect();
        // In `product`'s order of each run's first range.
        runs.sort_by_key(|(first, _)| order(first));
        runs.into_iter()
            .filter_map(|(first, last)| {
                let ranges = (0..dims.len())
                    .map(|i| {
                        if i != axis {
                            return range_of(i, first[i]);
                        }
                        Some(match (range_of(i, first[i])?, range_of(i, last)?) {
                            (DimRange::Range { start, .. }, DimRange::Range { end, .. }) => {
                                DimRange::Range { start, end }
                            }
                            (r, _) => r,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(partition_of(dims, ranges))
            })
            .collect()
    };
    OccupiedPlan {
        partitions,
        ranges_holding_rows,
    }
}

/// Neighbouring first-dimension buckets merged into one range: from
/// `first` to `last`, at `rest` in every other dimension.
struct MergedRun {
    first: Option<i64>,
    last: Option<i64>,
    rest: Vec<Option<i64>>,
    rows: u64,
}

/// Runs of neighbouring first-dimension buckets of `held` (distinct)
/// sharing every other bucket, of at most `max_rows` rows together, in
/// `product`'s order of their first bucket. A NULL first bucket is a run of
/// its own.
fn merge_first_dimension(held: Vec<OccupiedBucket>, max_rows: u64) -> Vec<MergedRun> {
    let order = |b: &Option<i64>| (b.is_none(), b.unwrap_or(0));
    let rest_order = |k: &[Option<i64>]| -> Vec<(bool, i64)> { k.iter().map(order).collect() };
    // Neighbours along the first dimension are those of one group of the
    // other dimensions, in the first dimension's order.
    let mut by_rest = held;
    by_rest.sort_by_key(|k| (rest_order(&k.buckets[1..]), order(&k.buckets[0])));
    let mut runs: Vec<MergedRun> = Vec::new();
    for key in by_rest {
        let first = key.buckets[0];
        let rest = &key.buckets[1..];
        match runs.last_mut() {
            Some(run)
                if first.is_some()
                    && run.last.is_some()
                    && run.rest == rest
                    && run.rows.saturating_add(key.rows) <= max_rows =>
            {
                run.last = first;
                run.rows += key.rows;
            }
            _ => runs.push(MergedRun {
                first,
                last: first,
                rest: rest.to_vec(),
                rows: key.rows,
            }),
        }
    }
    runs.sort_by_key(|run| (order(&run.first), rest_order(&run.rest)));
    runs
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
mod tests {
    use super::*;

    fn dim(step: Step, kind: PartitionKind) -> PartitionDimension {
        PartitionDimension {
            name: "id".into(),
            column: ColumnRef::bare("id"),
            kind,
            date_only: false,
            step,
        }
    }

    #[test]
    fn integer_ranges_are_aligned_and_cover_bounds() {
        let parts = plan_partitions(
            &[dim(Step::Int(10), PartitionKind::Integer)],
            &[ColumnBounds {
                min_max: Some((PartitionValue::Int(7), PartitionValue::Int(20))),
                has_nulls: true,
            }],
        );
        let ids: Vec<_> = parts.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["id_0_10", "id_10_20", "id_20_30", "id_null"]);
    }

    #[test]
    fn negative_integers_align_downwards() {
        let parts = plan_partitions(
            &[dim(Step::Int(10), PartitionKind::Integer)],
            &[ColumnBounds {
                min_max: Some((PartitionValue::Int(-3), PartitionValue::Int(-1))),
                has_nulls: false,
            }],
        );
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].id, "id_-10_0");
    }

    #[test]
    fn month_steps_follow_the_calendar() {
        let jan15 = Utc
            .with_ymd_and_hms(2024, 1, 15, 10, 0, 0)
            .unwrap()
            .timestamp_micros();
        let mar2 = Utc
            .with_ymd_and_hms(2024, 3, 2, 0, 0, 0)
            .unwrap()
            .timestamp_micros();
        let parts = plan_partitions(
            &[dim(Step::Months(1), PartitionKind::Datetime)],
            &[ColumnBounds {
                min_max: Some((PartitionValue::Micros(jan15), PartitionValue::Micros(mar2))),
                has_nulls: false,
            }],
        );
        let ids: Vec<_> = parts.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "id_2024-01-01T00:00:00_2024-02-01T00:00:00",
                "id_2024-02-01T00:00:00_2024-03-01T00:00:00",
                "id_2024-03-01T00:00:00_2024-04-01T00:00:00"
            ]
        );
    }

    #[test]
    fn delta_window_starts_at_the_watermark_and_ends_at_the_max() {
        let cursor = dim(Step::Single, PartitionKind::Integer);
        let bounds = ColumnBounds {
            min_max: Some((PartitionValue::Int(1), PartitionValue::Int(500))),
            has_nulls: true,
        };
        assert_eq!(
            delta_window(&cursor, Some(PartitionValue::Int(300)), &bounds),
            [
                DimRange::Range {
                    start: PartitionValue::Int(300),
                    end: PartitionValue::Int(501)
                },
                DimRange::Null
            ]
        );
        // First run: from the minimum.
        assert_eq!(
            delta_window(&cursor, None, &bounds)[0],
            DimRange::Range {
                start: PartitionValue::Int(1),
                end: PartitionValue::Int(501)
            }
        );
        // A watermark past every row: nothing but the NULL rows.
        assert_eq!(
            delta_window(&cursor, Some(PartitionValue::Int(900)), &bounds),
            [DimRange::Null]
        );
        // With a step the window is cut into aligned pieces.
        let stepped = dim(Step::Int(100), PartitionKind::Integer);
        let no_nulls = ColumnBounds {
            has_nulls: false,
            ..bounds
        };
        assert_eq!(
            delta_window(&stepped, Some(PartitionValue::Int(250)), &no_nulls).len(),
            4 // [200,300) .. [500,600): 500 itself is in the window
        );
    }

    #[test]
    fn halves_split_the_first_wide_range() {
        let parts = plan_partitions(
            &[dim(Step::Int(10), PartitionKind::Integer)],
            &[ColumnBounds {
                min_max: Some((PartitionValue::Int(0), PartitionValue::Int(9))),
                has_nulls: false,
            }],
        );
        let (a, b) = parts[0].halves().unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("id_0_5", "id_5_10"));
        let (c, _) = a.halves().unwrap();
        assert_eq!(c.id, "id_0_2");
        let single = plan_partitions(
            &[dim(Step::Int(1), PartitionKind::Integer)],
            &[ColumnBounds {
                min_max: Some((PartitionValue::Int(3), PartitionValue::Int(3))),
                has_nulls: false,
            }],
        );
        assert!(single[0].halves().is_none());
    }

    #[test]
    fn split_by_cuts_along_finer_steps_within_the_range() {
        let parts = plan_partitions(
            &[dim(Step::Int(50), PartitionKind::Integer)],
            &[ColumnBounds {
                min_max: Some((PartitionValue::Int(0), PartitionValue::Int(49))),
                has_nulls: false,
            }],
        );
        let finer = parts[0].split_by(&[dim(Step::Int(20), PartitionKind::Integer)]);
        let ids: Vec<_> = finer.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["id_0_20", "id_20_40", "id_40_50"]);
        let other = PartitionDimension {
            name: "other".into(),
            ..dim(Step::Int(5), PartitionKind::Integer)
        };
        assert_eq!(parts[0].split_by(&[other]), vec![parts[0].clone()]);
    }

    /// Steps over spans: negative, single-value, before 1970, calendar.
    fn step_cases() -> Vec<(Step, PartitionValue, PartitionValue)> {
        vec![
            (
                Step::Int(10),
                PartitionValue::Int(-25),
                PartitionValue::Int(31),
            ),
            (Step::Int(7), PartitionValue::Int(0), PartitionValue::Int(0)),
            (Step::Int(1), PartitionValue::Int(5), PartitionValue::Int(9)),
            (
                Step::Micros(3_600_000_000),
                PartitionValue::Micros(-7_200_000_001),
                PartitionValue::Micros(86_400_000_000),
            ),
            (
                Step::Months(1),
                PartitionValue::Micros(0),
                PartitionValue::Micros(40_000_000_000_000),
            ),
            (
                Step::Months(3),
                PartitionValue::Micros(-40_000_000_000_000),
                PartitionValue::Micros(1_000),
            ),
            (
                Step::Single,
                PartitionValue::Int(3),
                PartitionValue::Int(90),
            ),
        ]
    }

    #[test]
    fn range_count_is_the_number_of_ranges_split_makes() {
        let cases = step_cases();
        for (step, lo, hi) in cases {
            assert_eq!(
                range_count(step, lo, hi),
                split(step, lo, hi).len() as u128,
                "{step:?} {lo} {hi}"
            );
        }
    }

    #[test]
    fn a_grid_numbers_the_ranges_split_makes() {
        let mut cases = step_cases();
        cases.extend([
            (
                Step::Micros(7_200_000_000),
                PartitionValue::Micros(1_704_067_200_000_001),
                PartitionValue::Micros(1_704_096_000_500_000),
            ),
            (
                Step::Single,
                PartitionValue::Micros(-5),
                PartitionValue::Micros(7_000_001),
            ),
        ]);
        for (step, lo, hi) in cases {
            let ranges = split(step, lo, hi);
            let grid = BucketGrid::of(step, lo, hi).unwrap();
            assert_eq!(grid.count, ranges.len() as u128, "{step:?}");
            for (b, r) in ranges.iter().enumerate() {
                assert_eq!(grid.range(b as i64).as_ref(), Some(r), "{step:?} {b}");
                let DimRange::Range { start, end } = r else {
                    panic!("{r:?}")
                };
                // The first and the last value of the range in the span.
                for v in [
                    start.as_i64().max(lo.as_i64()),
                    (end.as_i64() - 1).min(hi.as_i64()),
                ] {
                    assert_eq!(grid.bucket_of(v), b as i64, "{step:?} {v}");
                }
            }
            assert_eq!(grid.range(-1), None);
            assert_eq!(grid.range(ranges.len() as i64), None);
            let (DimRange::Range { start, .. }, DimRange::Range { end, .. }) =
                (&ranges[0], &ranges[ranges.len() - 1])
            else {
                panic!()
            };
            assert_eq!(
                grid.span(),
                Some(DimRange::Range {
                    start: *start,
                    end: *end
                })
            );
        }
        // Ranges that are never made: the bucket of a far value, its range.
        let wide = BucketGrid::of(
            Step::Int(10),
            PartitionValue::Int(1),
            PartitionValue::Int(1_000_000_000_000_000),
        )
        .unwrap();
        assert_eq!(wide.count, 100_000_000_000_001);
        assert_eq!(wide.bucket_of(1_000_000_000_000_000), 100_000_000_000_000);
        assert_eq!(
            wide.range(100_000_000_000_000),
            Some(DimRange::Range {
                start: PartitionValue::Int(1_000_000_000_000_000),
                end: PartitionValue::Int(1_000_000_000_000_010)
            })
        );
        // Ranges clamped at the ends of i64 are not numbered.
        assert_eq!(
            BucketGrid::of(
                Step::Int(1000),
                PartitionValue::Int(i64::MIN),
                PartitionValue::Int(0)
            ),
            None
        );
    }

    #[test]
    fn occupied_partitions_are_the_products_with_rows_in_its_order() {
        let a = dim(Step::Int(10), PartitionKind::Integer);
        let b = PartitionDimension {
            name: "b".into(),
            ..dim(Step::Int(100), PartitionKind::Integer)
        };
        let ba = ColumnBounds {
            min_max: Some((PartitionValue::Int(0), PartitionValue::Int(29))),
            has_nulls: true,
        };
        let bb = ColumnBounds {
            min_max: Some((PartitionValue::Int(0), PartitionValue::Int(250))),
            has_nulls: false,
        };
        let dims = [a, b];
        let grids: Vec<BucketGrid> = dims
            .iter()
            .zip([ba, bb])
            .map(|(d, b)| {
                let (lo, hi) = b.min_max.unwrap();
                BucketGrid::of(d.step, lo, hi).unwrap()
            })
            .collect();
        let key = |buckets: Vec<Option<i64>>, rows: u64| OccupiedBucket { buckets, rows };
        let keys = vec![
            key(vec![None, Some(2)], 1),
            key(vec![Some(1), Some(0)], 4),
            key(vec![Some(0), Some(2)], 2),
            // Named by the destination too, with fewer rows.
            key(vec![Some(1), Some(0)], 3),
            // Not in the bounds read: left out.
            key(vec![Some(3), Some(0)], 1),
            key(vec![Some(0), None], 1),
        ];
        let plan = occupied_partitions(&dims, &grids, &[true, false], keys, MERGE_SMALL_RANGES);
        assert_eq!(plan.ranges_holding_rows, 3);
        let occupied = plan.partitions;
        let ids: Vec<_> = occupied.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "id_0_10__b_200_300",
                "id_10_20__b_0_100",
                "id_null__b_200_300"
            ]
        );
        let dense = plan_partitions(&dims, &[ba, bb]);
        let in_dense: Vec<_> = dense.iter().filter(|p| occupied.contains(p)).collect();
        assert_eq!(in_dense.len(), 3, "the same partitions as the dense plan's");
    }

    fn ids(plan: &OccupiedPlan) -> Vec<&str> {
        plan.partitions.iter().map(|p| p.id.as_str()).collect()
    }

    fn merge_below(max_rows: u64) -> MergePolicy {
        MergePolicy {
            max_rows,
            above_partitions: 0,
        }
    }

    #[test]
    fn neighbouring_ranges_merge_in_order_up_to_the_row_bound() {
        let dims = [dim(Step::Int(10), PartitionKind::Integer)];
        let grid = BucketGrid::of(
            dims[0].step,
            PartitionValue::Int(0),
            PartitionValue::Int(99),
        )
        .unwrap();
        let counts = [
            (Some(0), 60),
            (Some(1), 30),
            (Some(2), 20),
            (Some(3), 70),
            (Some(5), 500),
            (Some(7), 10),
            (Some(9), 5),
            (None, 5),
        ];
        let keys: OccupiedBuckets = counts
            .iter()
            .rev()
            .map(|&(b, rows)| OccupiedBucket {
                buckets: vec![b],
                rows,
            })
            .collect();
        let plan = occupied_partitions(&dims, &[grid], &[true], keys.clone(), merge_below(100));
        // 0+1 (90 rows; 2 would make 110), 2+3 (90), 5 alone (more than the
        // bound, never merged), 7..9 across the empty 8, NULLs alone and last.
        assert_eq!(
            ids(&plan),
            ["id_0_20", "id_20_40", "id_50_60", "id_70_100", "id_null"]
        );
        assert_eq!(plan.ranges_holding_rows, 8);
        // The same rows per range, in any order, plan the same partitions.
        let mut shuffled = keys.clone();
        shuffled.swap(0, 5);
        shuffled.swap(2, 7);
        assert_eq!(
            occupied_partitions(&dims, &[grid], &[true], shuffled, merge_below(100)),
            plan
        );
        // No more ranges holding rows than the policy merges above: each
        // its own partition, as the dense plan names it.
        let unmerged = occupied_partitions(
            &dims,
            &[grid],
            &[true],
            keys,
            MergePolicy {
                max_rows: 100,
                above_partitions: 8,
            },
        );
        assert_eq!(
            ids(&unmerged),
            [
                "id_0_10",
                "id_10_20",
                "id_20_30",
                "id_30_40",
                "id_50_60",
                "id_70_80",
                "id_90_100",
                "id_null"
            ]
        );
    }

    #[test]
    fn a_window_with_one_cursor_range_merges_along_the_next_dimension() {
        let cursor = PartitionDimension {
            name: "at".into(),
            ..dim(Step::Single, PartitionKind::Integer)
        };
        let dims = [cursor, dim(Step::Int(10), PartitionKind::Integer)];
        let grids = [
            BucketGrid::of(Step::Single, PartitionValue::Int(5), PartitionValue::Int(9)).unwrap(),
            BucketGrid::of(
                dims[1].step,
                PartitionValue::Int(0),
                PartitionValue::Int(59),
            )
            .unwrap(),
        ];
        // Ranges 0, 1, 2 and 4 of the id hold rows: one partition under the
        // window's bound, two under a bound of 10 rows (range 4 holds 9).
        let keys: OccupiedBuckets = [(0, 3), (1, 3), (2, 3), (4, 9)]
            .into_iter()
            .map(|(b, rows)| OccupiedBucket {
                buckets: vec![Some(0), Some(b)],
                rows,
            })
            .collect();
        let plan = occupied_partitions(&dims, &grids, &[false, false], keys, MERGE_DELTA_WINDOW);
        assert_eq!(plan.ranges_holding_rows, 4);
        assert_eq!(ids(&plan), ["at_5_10__id_0_50"]);
        let merged = occupied_partitions(
            &dims,
            &grids,
            &[false, false],
            [(0, 3), (1, 3), (2, 3), (4, 9)]
                .into_iter()
                .map(|(b, rows)| OccupiedBucket {
                    buckets: vec![Some(0), Some(b)],
                    rows,
                })
                .collect(),
            MergePolicy {
                max_rows: 10,
                above_partitions: 1,
            },
        );
        assert_eq!(ids(&merged), ["at_5_10__id_0_30", "at_5_10__id_40_50"]);
    }

    #[test]
    fn ranges_merge_only_where_every_other_dimension_agrees() {
        let a = dim(Step::Int(10), PartitionKind::Integer);
        let b = PartitionDimension {
            name: "b".into(),
            ..dim(Step::Int(100), PartitionKind::Integer)
        };
        let dims = [a, b];
        let grids = [
            BucketGrid::of(
                dims[0].step,
                PartitionValue::Int(0),
                PartitionValue::Int(39),
            )
            .unwrap(),
            BucketGrid::of(
                dims[1].step,
                PartitionValue::Int(0),
                PartitionValue::Int(250),
            )
            .unwrap(),
        ];
        let keys: OccupiedBuckets = [
            [Some(0), Some(0)],
            [Some(1), Some(0)],
            [Some(3), Some(0)],
            [Some(1), Some(2)],
            [Some(2), Some(2)],
            [None, Some(0)],
            [Some(2), None],
        ]
        .into_iter()
        .map(|k| OccupiedBucket {
            buckets: k.to_vec(),
            rows: 1,
        })
        .collect();
        let plan = occupied_partitions(&dims, &grids, &[true, true], keys, merge_below(100));
        assert_eq!(
            ids(&plan),
            [
                "id_0_40__b_0_100",
                "id_10_30__b_200_300",
                "id_20_30__b_null",
                "id_null__b_0_100"
            ]
        );
        // Every row's range is in exactly one partition.
        let holds = |p: &Partition, a: i64, b: i64| {
            p.ranges.iter().zip([a, b]).all(|((_, r), v)| match r {
                DimRange::Range { start, end } => start.as_i64() <= v && v < end.as_i64(),
                _ => false,
            })
        };
        for (a, b) in [(5, 50), (15, 50), (35, 50), (15, 250), (25, 250)] {
            assert_eq!(
                plan.partitions.iter().filter(|p| holds(p, a, b)).count(),
                1,
                "{a}, {b}"
            );
        }
    }

    #[test]
    fn a_sparse_key_over_a_wide_span_is_refused_with_the_step_that_would_do() {
        let d = dim(Step::Int(10), PartitionKind::Integer);
        let wide = ColumnBounds {
            min_max: Some((
                PartitionValue::Int(1),
                PartitionValue::Int(1_000_000_000_000_000),
            )),
            has_nulls: false,
        };
        assert_eq!(
            too_many_partitions(std::slice::from_ref(&d), &[wide]).as_deref(),
            Some("partitioning on \"id\" in steps of 10 from 1 to 1000000000000000 makes 100000000000001 partitions, more than the 1000000 a run can take; raise its step to at least 2000000000 (partition_step, or step in primary_partitions); every range costs its queries, even an empty one")
        );
        let fits = ColumnBounds {
            min_max: Some((PartitionValue::Int(0), PartitionValue::Int(9_999_999))),
            has_nulls: false,
        };
        assert_eq!(too_many_partitions(&[d], &[fits]), None);
    }

    #[test]
    fn empty_table_has_no_partitions() {
        let parts = plan_partitions(
            &[dim(Step::Int(10), PartitionKind::Integer)],
            &[ColumnBounds {
                min_max: None,
                has_nulls: false,
            }],
        );
        assert!(parts.is_empty());
    }

    /// Found by the config fuzz test: bounds at the ends of i64 overflowed
    /// the aligned start, and a timestamp past chrono's last date made the
    /// monthly split loop from 1970 without end.
    #[test]
    fn extreme_bounds_split_without_overflow_or_end() {
        let b = |lo, hi| ColumnBounds {
            min_max: Some((lo, hi)),
            has_nulls: false,
        };
        let ints = dim(Step::Int(1000), PartitionKind::Integer);
        let low = b(
            PartitionValue::Int(i64::MIN),
            PartitionValue::Int(i64::MIN + 1500),
        );
        let parts = plan_partitions(std::slice::from_ref(&ints), &[low]);
        assert_eq!(
            parts.len() as u128,
            range_count(
                ints.step,
                PartitionValue::Int(i64::MIN),
                PartitionValue::Int(i64::MIN + 1500)
            )
        );
        assert!(matches!(
            parts[0].ranges[0].1,
            DimRange::Range {
                start: PartitionValue::Int(i64::MIN),
                ..
            }
        ));

        let months = dim(Step::Months(1), PartitionKind::Datetime);
        let end_of_time = b(
            PartitionValue::Micros(i64::MAX - 10),
            PartitionValue::Micros(i64::MAX),
        );
        let parts = plan_partitions(std::slice::from_ref(&months), &[end_of_time]);
        assert_eq!(parts.len(), 1);
        // From 1970 to the end of time is too many months, and says so
        // rather than counting one.
        let all = b(PartitionValue::Micros(0), PartitionValue::Micros(i64::MAX));
        assert!(too_many_partitions(std::slice::from_ref(&months), &[all]).is_some());
    }
}
