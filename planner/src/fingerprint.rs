//! Fingerprints of what shapes the rows a pipeline writes. A checkpoint or a
//! delta watermark is trusted only by a run whose fingerprint is the one it
//! was written under: a new filter, column, type, join or partitioning makes
//! the rows committed before no longer what the pipeline selects.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::model::{DeltaSpec, MappedColumn, Pipeline, StoredHash, TableRef};
use crate::partition::PartitionDimension;
use crate::plan::Plan;

/// The two fingerprints of a pipeline compiled for one strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFingerprint {
    /// What the destination should hold: source table, joins, filters,
    /// columns and their types, destination table. Binds a delta watermark.
    pub rows: String,
    /// `rows` plus what a run's partitions are cut from (strategy kind,
    /// partition dimensions, the delta cursor). Binds checkpoints.
    pub run: String,
}

impl SyncFingerprint {
    pub fn of(pipeline: &Pipeline, plan: &Plan) -> SyncFingerprint {
        let table = |t: &TableRef| {
            // The datastore by name: a moved host or a new password does not
            // change which rows are written.
            json!({
                "datastore": t.datastore.name(),
                "type": t.datastore.kind(),
                "schema": t.schema,
                "table": t.table,
                "alias": t.alias,
                "joins": t.joins,
                "filters": t.filters,
            })
        };
        let columns: Vec<_> = pipeline
            .columns
            .iter()
            .map(|c| {
                json!({
                    "dest": c.dest,
                    "source": source_text(c),
                    "spec": format!("{:?}", c.spec),
                    "unique": c.unique,
                    "hash_column": c.hash_column,
                    "stored_hash": c.stored_hash,
                })
            })
            .collect();
        let rows = json!({
            "source": table(&pipeline.source),
            "destination": table(&pipeline.destination),
            "columns": columns,
        });
        let run = json!({
            "rows": rows,
            "kind": plan.kind,
            "dimensions": dimensions_text(&plan.dimensions),
            "delta": delta_text(plan.delta.as_ref()),
        });
        SyncFingerprint {
            rows: digest(&rows),
            run: digest(&run),
        }
    }
}

/// The first 16 hex digits of the SHA-256 of the value's JSON: long enough
/// that two configs never meet by chance, short enough to read in a table.
fn digest(value: &serde_json::Value) -> String {
    let hash = Sha256::digest(value.to_string().as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

// The model held columns as SQL text (`"o"."id"`) when fingerprints were
// first written; these print them as that text, so checkpoints and delta
// watermarks written then still match (a delta pipeline would otherwise
// re-read its whole table once after an upgrade).

/// The SQL a source column was read with.
fn source_text(c: &MappedColumn) -> String {
    match c.stored_hash {
        StoredHash::Compute if c.spec.data_type == crate::types::ColumnType::Int64 => {
            "CAST(NULL AS bigint)".to_string()
        }
        StoredHash::Compute => "CAST(NULL AS text)".to_string(),
        _ => c.source_ref.to_string(),
    }
}

/// `Debug` of a dimension as it was, `source_expr` its column's SQL.
fn dimension_text(d: &PartitionDimension) -> String {
    format!(
        "PartitionDimension {{ name: {:?}, source_expr: {:?}, kind: {:?}, date_only: {:?}, step: {:?} }}",
        d.name,
        d.column.to_string(),
        d.kind,
        d.date_only,
        d.step
    )
}

fn dimensions_text(dims: &[PartitionDimension]) -> String {
    let dims: Vec<String> = dims.iter().map(dimension_text).collect();
    format!("[{}]", dims.join(", "))
}

fn delta_text(delta: Option<&DeltaSpec>) -> String {
    match delta {
        None => "None".to_string(),
        // `track_moves` only when set: fingerprints of deltas without it
        // stay what earlier versions wrote.
        Some(d) => format!(
            "Some(DeltaSpec {{ cursor: {}, lookback: {:?}, include_nulls: {:?}{} }})",
            dimension_text(&d.cursor),
            d.lookback,
            d.include_nulls,
            if d.track_moves {
                ", track_moves: true"
            } else {
                ""
            }
        ),
    }
}
