//! Partition dimensions: a column (mapped or not) with its kind and step,
//! from `partition_column`/`partition_step` or a strategy's partitions.

use super::names::{not_a_column_name, unmapped_dimension_name};
use super::{MappedColumn, Problems};
use crate::column_ref::ColumnRef;
use crate::config::{PartitionConfig, PipelineFile};
use crate::partition::{PartitionDimension, Step};
use crate::types::{ColumnType, PartitionKind};

/// A `step_unit` as microseconds, or months.
pub(super) fn step_for(
    kind: PartitionKind,
    step: i64,
    unit: Option<&str>,
    path: &str,
    problems: &mut Problems,
) -> Step {
    if step <= 0 {
        // The simple form's step is a field of its own.
        let step_path = match path {
            "partition_column" => "partition_step".to_string(),
            _ => format!("{path}.step"),
        };
        problems.push(
            step_path,
            format!("step must be at least 1, got {step}: it is how many values (or units of step_unit) one partition spans"),
        );
        return Step::Int(1);
    }
    match kind {
        PartitionKind::Integer => {
            if let Some(u) = unit {
                problems.push(
                    format!("{path}.step_unit"),
                    format!("step_unit \"{u}\" only applies to datetime partitions"),
                );
            }
            Step::Int(step)
        }
        PartitionKind::Datetime => {
            const SEC: i64 = 1_000_000;
            let per = match unit.unwrap_or("second") {
                "second" | "seconds" => SEC,
                "minute" | "minutes" => 60 * SEC,
                "hour" | "hours" => 3600 * SEC,
                "day" | "days" => 86_400 * SEC,
                "week" | "weeks" => 7 * 86_400 * SEC,
                "month" | "months" | "year" | "years" => {
                    let per_unit = if unit.is_some_and(|u| u.starts_with('y')) {
                        12
                    } else {
                        1
                    };
                    return match u32::try_from(step)
                        .ok()
                        .and_then(|s| s.checked_mul(per_unit))
                    {
                        Some(months) => Step::Months(months),
                        None => {
                            problems.push(
                                format!("{path}.step"),
                                format!(
                                    "step {step} {} is too long to partition by",
                                    unit.unwrap_or_default()
                                ),
                            );
                            Step::Months(1)
                        }
                    };
                }
                other => {
                    problems.push(
                        format!("{path}.step_unit"),
                        format!("unknown step_unit \"{other}\"; use second, minute, hour, day, week, month or year"),
                    );
                    SEC
                }
            };
            Step::Micros(step.saturating_mul(per))
        }
    }
}

/// Resolves a partition column name (source or dest name) to its SQL and type.
pub(super) fn partition_dimension(
    name: &str,
    declared_type: Option<&str>,
    step: i64,
    unit: Option<&str>,
    path: &str,
    columns: &[MappedColumn],
    problems: &mut Problems,
) -> Option<PartitionDimension> {
    let mapped = columns.iter().find(|c| c.is_named(name));
    let (dim_name, column, ty) = match mapped {
        Some(c) => (c.dest.clone(), c.source_ref.clone(), Some(c.spec.data_type)),
        None => {
            let Some(column) = ColumnRef::parse(name) else {
                problems.push(format!("{path}.column"), not_a_column_name(name));
                return None;
            };
            (unmapped_dimension_name(name), column, None)
        }
    };
    // The column's own type decides how bounds compare; `data_type: datetime`
    // on a date column still means whole days.
    let date_only = ty == Some(ColumnType::Date)
        || (ty.is_none() && declared_type.is_some_and(|t| t.eq_ignore_ascii_case("date")));
    let kind = match declared_type.map(|t| t.to_ascii_lowercase()) {
        Some(t) if ["int", "integer", "bigint", "smallint"].contains(&t.as_str()) => {
            PartitionKind::Integer
        }
        Some(t) if ["datetime", "timestamp", "timestamptz", "date"].contains(&t.as_str()) => {
            PartitionKind::Datetime
        }
        Some(t) => {
            problems.push(
                format!("{path}.data_type"),
                format!("cannot partition by a {t} column; use integer or datetime"),
            );
            return None;
        }
        None => match ty.and_then(|t| t.partitionable()) {
            Some(k) => k,
            None => {
                problems.push(
                    path.to_string(),
                    format!("partition column \"{name}\" must be an integer or date/time column"),
                );
                return None;
            }
        },
    };
    let step = step_for(kind, step, unit, path, problems);
    Some(PartitionDimension {
        name: dim_name,
        column,
        kind,
        date_only,
        step,
    })
}

pub(super) fn simple_partitioning(
    raw: &PipelineFile,
    columns: &[MappedColumn],
    problems: &mut Problems,
) -> Vec<PartitionDimension> {
    let Some(step) = raw.partition_step else {
        if raw.partition_column.is_some() {
            problems.push(
                "partition_column",
                "partition_column needs a partition_step",
            );
        }
        return Vec::new();
    };
    let col = raw.partition_column.clone().or_else(|| {
        raw.column_map
            .iter()
            .find(|c| c.roles.iter().any(|r| r == "partition_column"))
            .map(|c| c.source.clone())
    });
    match col {
        Some(col) => partition_dimension(
            &col,
            None,
            step,
            None,
            "partition_column",
            columns,
            problems,
        )
        .into_iter()
        .collect(),
        None => {
            problems.push(
                "partition_step",
                "partition_step needs a partition_column (or a column with role partition_column)",
            );
            Vec::new()
        }
    }
}

pub(super) fn partition_config(
    p: &PartitionConfig,
    path: &str,
    columns: &[MappedColumn],
    problems: &mut Problems,
) -> Option<PartitionDimension> {
    if let Some(k) = &p.kind {
        if k != "range" {
            problems.push(
                format!("{path}.type"),
                format!("not supported yet: partition type {k}"),
            );
            return None;
        }
    }
    partition_dimension(
        &p.column,
        Some(&p.data_type),
        p.step,
        p.step_unit.as_deref(),
        path,
        columns,
        problems,
    )
}
