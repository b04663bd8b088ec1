//! Strategies normalised: their partitioning, the delta cursor, and the
//! fields they parse but cannot honour yet.

use super::names::unmapped_dimension_name;
use super::partitioning::{partition_config, partition_dimension, step_for};
use super::{DeltaSpec, MappedColumn, Problems, Strategy, StrategyKind, DEFAULT_PAGE_SIZE};
use crate::config::{DeltaConfig, PartitionConfig, StrategyConfig, StrategyType};
use crate::partition::{PartitionDimension, Step};
use crate::types::PartitionKind;

pub(super) fn normalize_strategy(
    default_partitioning: &[PartitionDimension],
    i: usize,
    s: &StrategyConfig,
    columns: &[MappedColumn],
    hash_algo: Option<&str>,
    aggregate: bool,
    problems: &mut Problems,
) -> Option<Strategy> {
    let path = format!("strategies[{i}]");
    let kind = match &s.kind {
        StrategyType::Full(_) => StrategyKind::Full,
        StrategyType::Delta(_) => StrategyKind::Delta,
        StrategyType::Hash(_) => StrategyKind::Hash,
        StrategyType::Unknown { name } => {
            problems.push(
                format!("{path}.type"),
                format!("unknown strategy type \"{name}\"; use full, delta or hash"),
            );
            return None;
        }
    };
    if let Some(cron) = &s.cron {
        if let Err(e) = cron.parse::<croner::Cron>() {
            problems.push(
                format!("{path}.cron"),
                format!("\"{cron}\" is not a cron expression ({e}); write five fields, minute hour day-of-month month day-of-week, e.g. \"*/15 * * * *\""),
            );
        }
    }
    let mut primary = Vec::new();
    if !s.primary_partitions.is_empty() {
        for (pi, p) in s.primary_partitions.iter().enumerate() {
            let ppath = format!("{path}.primary_partitions[{pi}]");
            if let Some(d) = partition_config(p, &ppath, columns, problems) {
                primary.push(d);
            }
        }
    } else {
        // A delta's window is cut by partition_column/partition_step too,
        // or a first delta over a whole table is one partition: one resume
        // point and one lane.
        primary = default_partitioning.to_vec();
    }
    if kind == StrategyKind::Hash && primary.is_empty() {
        primary.extend(key_range_dimension(columns));
    }
    let delete_missing = match &s.kind {
        StrategyType::Hash(h) => h.delete_missing.unwrap_or(true),
        StrategyType::Full(f) => f.delete_missing.unwrap_or(false),
        _ => false,
    };
    // An aggregate's partitions are ranges of its group keys, checked with
    // the group-by (`aggregate::key_dimensions`).
    if (kind == StrategyKind::Hash || delete_missing) && !aggregate {
        // Both sides are cut by the same ranges (and deletes take only the
        // destination rows inside the range written), so the column must
        // exist in the destination too.
        for d in &primary {
            if !columns.iter().any(|c| {
                c.dest == d.name && !c.stored_hash.is_compute() && c.source_ref == d.column
            }) {
                problems.push(
                    format!("{path}.primary_partitions"),
                    format!(
                        "{}, so its partition column must be synced; map {} in the columns",
                        if kind == StrategyKind::Hash {
                            "a hash strategy compares both sides range by range"
                        } else {
                            "a full strategy with delete_missing compares both sides and deletes range by range"
                        },
                        d.column
                    ),
                );
            }
        }
    }
    // Hash: the finer ranges a differing primary partition is cut into.
    // Delta: finer partitions, with the step path each came from.
    let mut secondary = Vec::new();
    let mut delta_finer = Vec::new();
    if matches!(kind, StrategyKind::Hash | StrategyKind::Delta) {
        for (si, sp) in s.secondary_partitions.iter().enumerate() {
            let spath = format!("{path}.secondary_partitions[{si}]");
            let Some(d) = partition_config(sp, &spath, columns, problems) else {
                continue;
            };
            if kind == StrategyKind::Delta {
                delta_finer.push((format!("{spath}.step"), d));
            } else {
                if !primary.iter().any(|p| p.name == d.name) {
                    problems.push(
                        format!("{spath}.column"),
                        format!(
                            "secondary partition column \"{}\" has no primary partition; secondary partitions cut primary ones finer",
                            sp.column
                        ),
                    );
                }
                secondary.push(d);
            }
        }
    }
    if kind == StrategyKind::Delta {
        delta_finer.extend(sub_partition(&path, s, default_partitioning, problems));
    }
    let delta = match &s.kind {
        StrategyType::Delta(d) => {
            let mut delta = delta_spec(
                &path,
                d,
                &s.primary_partitions,
                columns,
                &mut primary,
                problems,
            )?;
            for (step_path, finer) in delta_finer {
                cut_finer(&step_path, &mut delta.cursor, &mut primary, finer, problems);
            }
            Some(delta)
        }
        _ => None,
    };
    let page_size = s
        .page_size
        .or(s.data_fetch.as_ref().and_then(|d| d.page_size))
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .max(1);
    Some(Strategy {
        name: s.name.clone(),
        kind,
        enabled: s.enabled,
        cron: s.cron.clone(),
        page_size,
        primary,
        secondary,
        delta,
        index: i,
        delete_missing,
        batch_rows: s
            .pipeline_config
            .as_ref()
            .and_then(|c| c.batch_size)
            .map(|n| (n as usize).max(1)),
        unsupported: unsupported_fields(&path, kind, s, hash_algo),
    })
}

/// A hash strategy with no partitioning bisects in key order, starting
/// with its first key column when that is an integer: one range from the
/// smallest value to the largest. (A range that cannot be cut further is
/// cut by the next integer key column during the comparison.)
fn key_range_dimension(columns: &[MappedColumn]) -> Option<PartitionDimension> {
    let key = columns.iter().find(|c| c.unique)?;
    if key.spec.data_type.partitionable() != Some(PartitionKind::Integer) {
        return None;
    }
    Some(PartitionDimension {
        name: key.dest.clone(),
        column: key.source_ref.clone(),
        kind: PartitionKind::Integer,
        date_only: false,
        step: Step::Single,
    })
}

/// A delta's `use_sub_partition: true`: its partitions cut by the
/// pipeline's `partition_column` in steps of `sub_partition_step`, as a
/// secondary partition on that column would (with the step's path).
fn sub_partition(
    path: &str,
    s: &StrategyConfig,
    default_partitioning: &[PartitionDimension],
    problems: &mut Problems,
) -> Option<(String, PartitionDimension)> {
    let step_path = format!("{path}.sub_partition_step");
    match (s.use_sub_partition, s.sub_partition_step) {
        (Some(true), Some(step)) if step < 1 => {
            problems.push(
                step_path,
                format!("sub_partition_step must be at least 1, got {step}"),
            );
            None
        }
        (Some(true), Some(step)) => match default_partitioning.first() {
            Some(column) => Some((
                step_path.clone(),
                PartitionDimension {
                    step: step_for(column.kind, step, None, &step_path, problems),
                    ..column.clone()
                },
            )),
            None => {
                problems.push(
                    format!("{path}.use_sub_partition"),
                    "use_sub_partition cuts a delta's partitions by partition_column in steps of sub_partition_step; set partition_column and partition_step",
                );
                None
            }
        },
        (Some(true), None) => {
            problems.push(
                step_path,
                "use_sub_partition: true needs sub_partition_step: how many partition_column values (seconds, for a date/time column) one sub-partition spans",
            );
            None
        }
        (_, Some(_)) => {
            problems.push(
                step_path,
                "sub_partition_step applies only with use_sub_partition: true",
            );
            None
        }
        _ => None,
    }
}

/// Cuts a delta's partitions finer by `finer` (a secondary partition or
/// the sub-partitions): on a column they are already cut by, the cursor
/// included, its step replaces the coarser one, which it must divide so
/// that every range is cut into whole pieces (the pieces are then the
/// ranges of the finer step: the same ids, the same buckets to ask a source
/// about); on another column, a dimension of its own.
fn cut_finer(
    step_path: &str,
    cursor: &mut PartitionDimension,
    primary: &mut Vec<PartitionDimension>,
    finer: PartitionDimension,
    problems: &mut Problems,
) {
    let coarse = if cursor.name == finer.name {
        cursor
    } else if let Some(i) = primary.iter().position(|d| d.name == finer.name) {
        &mut primary[i]
    } else {
        primary.push(finer);
        return;
    };
    const DAY: i64 = 86_400_000_000;
    let divides = match (coarse.step, finer.step) {
        (Step::Single, _) => true,
        (Step::Int(c), Step::Int(f)) | (Step::Micros(c), Step::Micros(f)) => c % f == 0,
        (Step::Months(c), Step::Months(f)) => c % f == 0,
        // Months start at midnight.
        (Step::Months(_), Step::Micros(f)) => DAY % f == 0,
        _ => false,
    };
    if divides {
        coarse.step = finer.step;
    } else {
        problems.push(
            step_path,
            format!(
                "a step of {} does not cut the ranges of \"{}\" (step {}) into whole pieces; a delta's finer partitions need a step that divides it",
                crate::plan::step_text(finer.step),
                finer.name,
                crate::plan::step_text(coarse.step)
            ),
        );
    }
}

/// The delta cursor of a strategy: its column, its step (taken from a
/// primary partition on the same column, or `partition_column` when it is
/// the cursor, which then leaves `primary`), the lookback and what to do
/// with NULL cursors.
fn delta_spec(
    path: &str,
    delta: &DeltaConfig,
    partitions: &[PartitionConfig],
    columns: &[MappedColumn],
    primary: &mut Vec<PartitionDimension>,
    problems: &mut Problems,
) -> Option<DeltaSpec> {
    // Without `column`, the spec's examples cut the delta window by a
    // datetime primary partition: that column is the cursor.
    let implied = partitions.iter().find(|p| {
        ["datetime", "timestamp", "timestamptz", "date"]
            .contains(&p.data_type.to_ascii_lowercase().as_str())
    });
    let Some(column) = delta
        .column
        .as_deref()
        .or(implied.map(|p| p.column.as_str()))
    else {
        problems.push(
            format!("{path}.column"),
            "a delta strategy needs column: the date/time or increasing integer column that marks changed rows",
        );
        return None;
    };
    let mapped = columns.iter().find(|c| c.is_named(column));
    let declared = partitions
        .iter()
        .find(|p| p.column == column)
        .map(|p| p.data_type.clone());
    if let Some(c) = mapped {
        if c.spec.data_type.partitionable().is_none() {
            problems.push(
                format!("{path}.column"),
                format!(
                    "delta column \"{column}\" is {}; a delta cursor must be a date/time column or a monotonically increasing integer",
                    c.spec.data_type
                ),
            );
            return None;
        }
    } else if declared.is_none() {
        problems.push(
            format!("{path}.column"),
            format!("delta column \"{column}\" is not in the column map; map it, or give its data_type in a primary_partitions entry"),
        );
        return None;
    }
    let cursor = match primary.iter().position(|d| {
        mapped.is_some_and(|c| c.dest == d.name) || d.name == unmapped_dimension_name(column)
    }) {
        Some(i) => primary.remove(i),
        // Not cut: one range over the window.
        None => PartitionDimension {
            step: Step::Single,
            ..partition_dimension(
                column,
                declared.as_deref(),
                1,
                None,
                &format!("{path}.column"),
                columns,
                problems,
            )?
        },
    };
    let lookback = match delta.lookback {
        None => 0,
        Some(n) if n < 0 => {
            problems.push(
                format!("{path}.lookback"),
                format!("lookback must be 0 or more, got {n}"),
            );
            0
        }
        Some(n) => match (
            cursor.kind,
            step_for(
                cursor.kind,
                n.max(1),
                delta.lookback_unit.as_deref(),
                path,
                problems,
            ),
        ) {
            (_, _) if n == 0 => 0,
            (PartitionKind::Integer, Step::Int(v)) => v,
            (PartitionKind::Datetime, Step::Micros(v)) => v,
            (_, Step::Months(_)) => {
                problems.push(
                    format!("{path}.lookback_unit"),
                    "lookback takes second, minute, hour, day or week",
                );
                0
            }
            _ => 0,
        },
    };
    let include_nulls = match delta.null_cursor.as_deref() {
        None | Some("include") => true,
        Some("skip") => false,
        Some(other) => {
            problems.push(
                format!("{path}.null_cursor"),
                format!("unknown null_cursor \"{other}\"; use include (re-read rows whose cursor is NULL on every run) or skip"),
            );
            true
        }
    };
    Some(DeltaSpec {
        cursor,
        lookback,
        include_nulls,
        track_moves: delta.track_moves.unwrap_or(false),
    })
}

/// Fields of strategy `s` (at `path`) that parse but that a `kind`
/// strategy cannot honour yet, by path.
fn unsupported_fields(
    path: &str,
    kind: StrategyKind,
    s: &StrategyConfig,
    hash_algo: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if kind == StrategyKind::Hash {
        if let Some(algo) = hash_algo.filter(|a| *a != "md5_sum_hash") {
            out.push(format!("hash_algo: {algo}"));
        }
    }
    if !s.secondary_partitions.is_empty() && kind == StrategyKind::Full {
        out.push(format!("{path}.secondary_partitions"));
    }
    if !s.delta_partitions.is_empty() {
        out.push(format!("{path}.delta_partitions"));
    }
    if kind != StrategyKind::Delta
        && (s.use_sub_partition == Some(true) || s.sub_partition_step.is_some())
    {
        out.push(format!("{path}.use_sub_partition"));
    }
    if kind != StrategyKind::Delta && s.primary_partitions.iter().any(|p| p.bounded == Some(true)) {
        out.push(format!("{path}.primary_partitions.bounded"));
    }
    // What SyncHub always does is accepted; its opposite is not there.
    if s.prevent_update_unless_changed == Some(false) {
        out.push(format!("{path}.prevent_update_unless_changed: false"));
    }
    if s.use_pagination == Some(false) {
        out.push(format!("{path}.use_pagination: false"));
    }
    if let Some(fetch) = &s.data_fetch {
        if fetch.enabled == Some(false) {
            out.push(format!("{path}.data_fetch.enabled: false"));
        }
        if fetch.use_pagination == Some(false) {
            out.push(format!("{path}.data_fetch.use_pagination: false"));
        }
    }
    if let Some(n) = s
        .pipeline_config
        .as_ref()
        .and_then(|c| c.max_concurrent_batches)
        .filter(|n| *n != 1)
    {
        out.push(format!(
            "{path}.pipeline_config.max_concurrent_batches: {n} (use max_concurrent_partitions)"
        ));
    }
    out
}
