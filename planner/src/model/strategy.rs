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
    } else if kind != StrategyKind::Delta {
        // partition_column/partition_step cut whole tables; a delta run is
        // cut along its cursor instead.
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
    if kind == StrategyKind::Hash || delete_missing {
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
    let mut secondary = Vec::new();
    if kind == StrategyKind::Hash {
        for (si, sp) in s.secondary_partitions.iter().enumerate() {
            let spath = format!("{path}.secondary_partitions[{si}]");
            if let Some(d) = partition_config(sp, &spath, columns, problems) {
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
    let delta = match &s.kind {
        StrategyType::Delta(d) => Some(delta_spec(
            &path,
            d,
            &s.primary_partitions,
            columns,
            &mut primary,
            problems,
        )?),
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

/// The delta cursor of a strategy: its column, its step (taken from a
/// primary partition on the same column, which then leaves `primary`), the
/// lookback and what to do with NULL cursors.
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
    let mut cursor = match primary.iter().position(|d| {
        mapped.is_some_and(|c| c.dest == d.name) || d.name == unmapped_dimension_name(column)
    }) {
        Some(i) => primary.remove(i),
        None => partition_dimension(
            column,
            declared.as_deref(),
            1,
            None,
            &format!("{path}.column"),
            columns,
            problems,
        )?,
    };
    if partitions.iter().all(|p| p.column != column) {
        cursor.step = Step::Single;
    }
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
    if !s.secondary_partitions.is_empty() && kind != StrategyKind::Hash {
        out.push(format!("{path}.secondary_partitions"));
    }
    if !s.delta_partitions.is_empty() {
        out.push(format!("{path}.delta_partitions"));
    }
    if s.use_sub_partition == Some(true) || s.sub_partition_step.is_some() {
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
