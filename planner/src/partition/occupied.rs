//! Partitions from where rows are: the grid that numbers a dimension's
//! aligned ranges, the occupied combinations a source reports, and the
//! partitions planned from them with small neighbours merged.

use serde::{Deserialize, Serialize};

use super::*;
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
