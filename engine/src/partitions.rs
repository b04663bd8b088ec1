//! Which partitions a run covers, from the plan and the source's bounds.

use connectors::Source;
use planner::model::DeltaSpec;
use planner::partition::{
    delta_window, dimension_ranges, plan_partitions, product, too_many_partitions, ColumnBounds,
    DimRange, Partition, PartitionDimension, PartitionValue,
};
use planner::types::PartitionKind;
use planner::Plan;

use crate::error::EngineError;

/// The partitions of one run, and for a delta run the watermark to store
/// once every one of them is committed.
pub struct RunPartitions {
    pub partitions: Vec<Partition>,
    pub next_watermark: Option<Watermark>,
    /// Set when the stored watermark is past every source row.
    pub warning: Option<String>,
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

pub async fn run_partitions(
    plan: &Plan,
    source: &mut dyn Source,
    watermark: Option<Watermark>,
) -> Result<RunPartitions, EngineError> {
    let Some(delta) = &plan.delta else {
        let bounds = source.bounds(&plan.dimensions).await?;
        refuse_too_many(plan, &plan.dimensions, &bounds)?;
        return Ok(RunPartitions {
            partitions: plan_partitions(&plan.dimensions, &bounds),
            next_watermark: None,
            warning: None,
        });
    };
    let mut dims = vec![delta.cursor.clone()];
    dims.extend(plan.dimensions.iter().cloned());
    let bounds = source.bounds(&dims).await?;
    let cursor_bounds = bounds[0];
    let lower = watermark.map(|w| lower_bound(delta, w));
    // The window runs from the lower bound, not the column's minimum.
    let mut window_bounds = bounds.clone();
    if let (Some(l), Some((min, max))) = (lower, cursor_bounds.min_max) {
        window_bounds[0].min_max = Some((l.max(min), max));
    }
    refuse_too_many(plan, &dims, &window_bounds)?;
    let mut cursor_ranges = delta_window(&delta.cursor, lower, &cursor_bounds);
    if !delta.include_nulls {
        cursor_ranges.retain(|r| *r != DimRange::Null);
    }
    let source_max = cursor_bounds.min_max.map(|(_, max)| max);
    let mut warning = None;
    let next_watermark = match (watermark, source_max) {
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
    let mut per_dim = vec![cursor_ranges];
    per_dim.extend(
        plan.dimensions
            .iter()
            .zip(&bounds[1..])
            .map(|(d, b)| dimension_ranges(d, b)),
    );
    let partitions = if per_dim[0].is_empty() {
        Vec::new()
    } else {
        product(&dims, per_dim)
    };
    Ok(RunPartitions {
        partitions,
        next_watermark,
        warning,
    })
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
