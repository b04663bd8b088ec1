//! Which partitions a run covers, from the plan and the source's bounds.

use connectors::Source;
use planner::model::DeltaSpec;
use planner::partition::{
    delta_window, dimension_ranges, occupied_partitions, plan_partitions, product,
    too_many_occupied, too_many_partitions, BucketGrid, ColumnBounds, DimRange, OccupiedPlan,
    Partition, PartitionDimension, PartitionValue, Step, MAX_PARTITIONS, MERGE_SMALL_RANGES,
};
use planner::types::PartitionKind;
use planner::{Pipeline, Plan};

use crate::error::EngineError;

/// The partitions of one run, and for a delta run the watermark to store
/// once every one of them is committed.
pub struct RunPartitions {
    pub partitions: Vec<Partition>,
    pub next_watermark: Option<Watermark>,
    /// Set when the stored watermark is past every source row.
    pub warning: Option<String>,
    /// Every range of the run's span, the product over its dimensions: more
    /// than the partitions when only the ranges holding rows were planned.
    pub ranges_total: u128,
    /// How many of those ranges hold rows: more than the partitions when
    /// neighbours holding few rows were merged.
    pub ranges_holding_rows: u128,
}

/// A delta cursor position: an integer value or microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark(pub PartitionValue);

impl Watermark {
    /// `int` or `micros`, as kept in the state store.
    pub fn kind(&self) -> &'static str {
        match self.0 {
            PartitionValue::Int(_) => "int",
            PartitionValue::Micros(_) => "micros",
        }
    }

    pub fn from_stored(kind: &str, value: i64) -> Option<Watermark> {
        match kind {
            "int" => Some(Watermark(PartitionValue::Int(value))),
            "micros" => Some(Watermark(PartitionValue::Micros(value))),
            _ => None,
        }
    }
}

impl std::fmt::Display for Watermark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Below this many ranges a full or hash run plans every range, empty or
/// not: an empty range costs its queries (about 1 ms on local servers),
/// while asking which hold rows costs a scan of the table's partition
/// columns (about 0.1 µs a row, grouped where the data lives). Past it, a
/// span mostly empty saves a query per empty range, and a dense one pays
/// under a tenth of what reading its rows costs.
const SPARSE_CHECK_RANGES: u128 = 100;

/// A delta asks which ranges of its window hold rows whenever it has more
/// than one: the scan covers only the window, whose rows it reads anyway.
const DELTA_SPARSE_CHECK_RANGES: u128 = 1;

/// The partitions of a run, from the source's bounds: every aligned range
/// of each dimension over its span, or, where the ranges are many, only the
/// combinations that hold rows (`Source::occupied_buckets`), with the same
/// ids, neighbours holding few rows merged. `deletes_from`: the pipeline of a run that deletes destination rows
/// missing from the source, into a destination that may hold rows; the
/// span is then both sides' extent and the ranges holding destination rows
/// are planned too, or rows deleted from the source would never be
/// compared.
pub async fn run_partitions(
    plan: &Plan,
    source: &mut dyn Source,
    watermark: Option<Watermark>,
    deletes_from: Option<&Pipeline>,
) -> Result<RunPartitions, EngineError> {
    let mut dims = Vec::new();
    dims.extend(plan.delta.as_ref().map(|d| d.cursor.clone()));
    dims.extend(plan.dimensions.iter().cloned());
    let mut bounds = source.bounds(&dims).await?;
    // The destination's own columns, named as the dimensions are.
    let dest_dims: Vec<PartitionDimension> = dims
        .iter()
        .map(|d| PartitionDimension {
            column: planner::ColumnRef::bare(&d.name),
            ..d.clone()
        })
        .collect();
    let mut destination = match deletes_from {
        Some(pipeline) => Some(crate::run::destination_as_source(pipeline).await?),
        None => None,
    };
    if let Some(destination) = destination.as_mut() {
        // A range only the destination has rows in (the source's last
        // ids deleted) is planned too: the span is both sides'.
        let theirs = destination.bounds(&dest_dims).await?;
        for (b, d) in bounds.iter_mut().zip(theirs) {
            *b = connectors::bounds::union(*b, d);
        }
    }
    // What the partitions range over: a delta's cursor from its window.
    let mut span_bounds = bounds.clone();
    let mut next_watermark = None;
    let mut warning = None;
    let mut lower = None;
    if let Some(delta) = &plan.delta {
        let cursor_bounds = bounds[0];
        lower = watermark.map(|w| lower_bound(delta, w));
        // The window runs from the lower bound, not the column's minimum.
        if let (Some(l), Some((min, max))) = (lower, cursor_bounds.min_max) {
            span_bounds[0].min_max = (l.max(min) <= max).then_some((l.max(min), max));
        }
        span_bounds[0].has_nulls &= delta.include_nulls;
        next_watermark = match (watermark, cursor_bounds.min_max.map(|(_, max)| max)) {
            (Some(w), Some(max)) if w.0 > max => {
                warning = Some(format!(
                    "the stored watermark {w} of {} is newer than the newest source row ({max}); no rows past it were read. \
                     If the source was rebuilt, run `synchub state reset {} --strategy {}`",
                    delta.cursor.name, plan.pipeline, plan.strategy
                ));
                Some(w)
            }
            (_, Some(max)) => Some(Watermark(max)),
            (w, None) => w,
        };
    }
    // An aggregate's first delta re-computes every group once, as one
    // partition, rather than once for each window its rows fall in.
    if plan.aggregate.is_some() && plan.delta.is_some() && lower.is_none() {
        return Ok(RunPartitions {
            partitions: vec![Partition::whole()],
            next_watermark,
            warning,
            ranges_total: 1,
            ranges_holding_rows: 1,
        });
    }
    let span = Span::of(&dims, span_bounds.clone());
    let threshold = if plan.delta.is_some() {
        DELTA_SPARSE_CHECK_RANGES
    } else {
        SPARSE_CHECK_RANGES
    };
    let destination = destination
        .as_deref_mut()
        .map(|d| (d as &mut dyn Source, &dest_dims[..]));
    // A delta past its watermark asks about its window alone, read by the
    // cursor: the table's row estimate does not tell how many it holds.
    let whole_table = lower.is_none();
    let occupied = occupied(
        plan,
        source,
        destination,
        &dims,
        &span,
        threshold,
        whole_table,
    )
    .await?;
    let mut ranges_holding_rows = None;
    let partitions = match (occupied, &plan.delta) {
        (Some(occupied), _) => {
            ranges_holding_rows = Some(occupied.ranges_holding_rows as u128);
            occupied.partitions
        }
        (None, None) => {
            refuse_too_many(plan, &dims, &bounds)?;
            plan_partitions(&dims, &bounds)
        }
        (None, Some(delta)) => {
            refuse_too_many(plan, &dims, &span_bounds)?;
            let mut cursor_ranges = delta_window(&delta.cursor, lower, &bounds[0]);
            if !delta.include_nulls {
                cursor_ranges.retain(|r| *r != DimRange::Null);
            }
            let mut per_dim = vec![cursor_ranges];
            per_dim.extend(
                plan.dimensions
                    .iter()
                    .zip(&bounds[1..])
                    .map(|(d, b)| dimension_ranges(d, b)),
            );
            if per_dim[0].is_empty() {
                Vec::new()
            } else {
                product(&dims, per_dim)
            }
        }
    };
    // An aggregate re-computes every group a partition's rows touch: its
    // first window starts at the watermark, so the rows before it in that
    // window's step (read before, unchanged) touch none.
    let partitions = match lower {
        Some(l) if plan.aggregate.is_some() => {
            partitions.into_iter().map(|p| p.starting_at(l)).collect()
        }
        _ => partitions,
    };
    Ok(RunPartitions {
        ranges_holding_rows: ranges_holding_rows.unwrap_or(partitions.len() as u128),
        partitions,
        next_watermark,
        warning,
        ranges_total: span.ranges_total(),
    })
}

/// What a run's partitions range over: each dimension's values from its
/// bounds (a delta cursor's from its window), and whether it gets an
/// `IS NULL` partition.
struct Span {
    bounds: Vec<ColumnBounds>,
    /// The aligned ranges of each dimension, numbered; `None` where their
    /// arithmetic does not fit 64 bits.
    grids: Vec<Option<BucketGrid>>,
}

impl Span {
    fn of(dims: &[PartitionDimension], bounds: Vec<ColumnBounds>) -> Span {
        let grids = dims
            .iter()
            .zip(&bounds)
            .map(|(d, b)| match b.min_max {
                Some((lo, hi)) => BucketGrid::of(d.step, lo, hi),
                // No value but NULLs: a grid of no range, so every bucket
                // a source names is NULL.
                None => {
                    BucketGrid::of(Step::Single, PartitionValue::Int(1), PartitionValue::Int(0))
                }
            })
            .collect();
        Span { bounds, grids }
    }

    /// Every combination of one range per dimension (`IS NULL` included).
    fn ranges_total(&self) -> u128 {
        self.bounds
            .iter()
            .zip(&self.grids)
            .map(|(b, g)| g.map_or(0, |g| g.count) + u128::from(b.has_nulls))
            .fold(1u128, |acc, c| acc.saturating_mul(c))
    }

    fn nulls(&self) -> Vec<bool> {
        self.bounds.iter().map(|b| b.has_nulls).collect()
    }

    /// The parts of the source a run reads, as partitions to ask which
    /// ranges hold rows in: the first dimension within its span (a delta
    /// window) with every other unrestricted, and its `IS NULL` rows when
    /// it has a partition of them; for a run that is no delta, every row.
    fn scopes(&self, dims: &[PartitionDimension], delta: bool) -> Vec<Partition> {
        if !delta {
            return vec![Partition::whole()];
        }
        let scope = |first: DimRange| Partition {
            id: "scope".into(),
            ranges: dims
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        d.to_ref(),
                        if i == 0 { first.clone() } else { DimRange::All },
                    )
                })
                .collect(),
        };
        let mut scopes: Vec<Partition> = self.grids[0]
            .and_then(|g| g.span())
            .map(scope)
            .into_iter()
            .collect();
        if self.bounds[0].has_nulls {
            scopes.push(scope(DimRange::Null));
        }
        scopes
    }
}

/// Rows per range, on average, past which a table is taken as dense and
/// every range planned without asking which hold rows. A range's own
/// query costs about what reading a thousand rows does, so below this
/// the question may save more than it costs.
const DENSE_ROWS_PER_RANGE: u128 = 1_000;

/// The partitions holding rows, when the span has more than `threshold`
/// ranges and the source (and a destination that deletes) can tell which,
/// neighbours holding few rows merged (`MERGE_SMALL_RANGES`); `None` to
/// plan every range.
async fn occupied(
    plan: &Plan,
    source: &mut dyn Source,
    destination: Option<(&mut dyn Source, &[PartitionDimension])>,
    dims: &[PartitionDimension],
    span: &Span,
    threshold: u128,
    whole_table: bool,
) -> Result<Option<OccupiedPlan>, EngineError> {
    let Some(grids) = span.grids.iter().copied().collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    if dims.is_empty() || span.ranges_total() <= threshold {
        return Ok(None);
    }
    // A table known to hold many rows per range is dense: asking about
    // all of it would scan every row to learn that every range holds some
    // (4 s of a 26 s hash run over 10M rows in 101 ranges).
    if whole_table {
        if let Some(rows) = source.estimated_rows().await? {
            if u128::from(rows) >= span.ranges_total().saturating_mul(DENSE_ROWS_PER_RANGE) {
                return Ok(None);
            }
        }
    }
    let scopes = span.scopes(dims, plan.delta.is_some());
    let limit = MAX_PARTITIONS as usize;
    let mut keys = Vec::new();
    for scope in &scopes {
        match source.occupied_buckets(scope, dims, &grids, limit).await? {
            Some(k) => keys.extend(k),
            None => return Ok(None),
        }
    }
    if let Some((destination, dest_dims)) = destination {
        for scope in span.scopes(dest_dims, plan.delta.is_some()) {
            match destination
                .occupied_buckets(&scope, dest_dims, &grids, limit)
                .await?
            {
                Some(k) => keys.extend(k),
                None => return Ok(None),
            }
        }
    }
    // Refused on the ranges holding rows, before merging: past the limit a
    // source stops counting, so the merged partitions would miss rows.
    // A window past the watermark whose cursor has no step of its own is
    // cut only by how partition_column cuts the table: its few changed
    // rows go in as few transactions as the row bound allows. A cursor
    // given a step asked for its windows as resume points, and keeps them.
    let cursor_unstepped = plan
        .delta
        .as_ref()
        .is_some_and(|d| d.cursor.step == planner::partition::Step::Single);
    let merge = if !whole_table && cursor_unstepped {
        planner::partition::MERGE_DELTA_WINDOW
    } else {
        MERGE_SMALL_RANGES
    };
    let occupied = occupied_partitions(dims, &grids, &span.nulls(), keys, merge);
    if occupied.ranges_holding_rows > limit {
        return Err(planner::PlannerError::TooManyPartitions {
            pipeline: plan.pipeline.clone(),
            message: too_many_occupied(dims),
        }
        .into());
    }
    Ok(Some(occupied))
}

fn refuse_too_many(
    plan: &Plan,
    dims: &[PartitionDimension],
    bounds: &[ColumnBounds],
) -> Result<(), EngineError> {
    match too_many_partitions(dims, bounds) {
        Some(message) => Err(planner::PlannerError::TooManyPartitions {
            pipeline: plan.pipeline.clone(),
            message,
        }
        .into()),
        None => Ok(()),
    }
}

/// Rows at or after this cursor value are read: the watermark itself is
/// included (rows sharing it may have been committed after the last read),
/// minus the lookback for late commits.
fn lower_bound(delta: &DeltaSpec, w: Watermark) -> PartitionValue {
    match (delta.cursor.kind, w.0) {
        (PartitionKind::Integer, PartitionValue::Int(v)) => {
            PartitionValue::Int(v.saturating_sub(delta.lookback))
        }
        (_, PartitionValue::Micros(v)) | (_, PartitionValue::Int(v)) => {
            PartitionValue::Micros(v.saturating_sub(delta.lookback))
        }
    }
}
