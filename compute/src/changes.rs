//! A delta aggregate's two steps around the re-computation, over Arrow
//! batches: which groups the changed source rows touch, and which of the
//! re-computed groups the destination must take (changed or new), lose
//! (no source row left) or already holds.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use planner::model::{quote_ident, Aggregate};

use crate::{logical_columns, ComputeError};

/// The distinct group keys the `changed` source rows (of `schema`) touch:
/// each row's key expressions, deduplicated, named by their destination
/// columns. Re-computing exactly these groups is what a delta run does.
pub async fn touched_keys(
    aggregate: &Aggregate,
    schema: SchemaRef,
    changed: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, ComputeError> {
    let ctx = SessionContext::new();
    let df = ctx.read_table(Arc::new(MemTable::try_new(schema, vec![changed])?))?;
    let keys = logical_columns(&ctx, &df, &aggregate.keys)?;
    Ok(df.aggregate(keys, Vec::new())?.collect().await?)
}

/// What the destination must do for the touched groups.
#[derive(Debug, Default)]
pub struct GroupChanges {
    /// Re-computed groups the destination lacks or holds other values for:
    /// keys then values, as re-computed.
    pub upserts: Vec<RecordBatch>,
    /// Keys of touched groups the destination holds but no source row is
    /// in any more.
    pub deletes: Vec<RecordBatch>,
    /// Re-computed groups the destination already holds as they are: not
    /// rewritten.
    pub unchanged: u64,
}

impl GroupChanges {
    pub fn upsert_rows(&self) -> u64 {
        self.upserts.iter().map(|b| b.num_rows() as u64).sum()
    }

    pub fn delete_rows(&self) -> u64 {
        self.deletes.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Compares the `recomputed` groups of the `touched` keys with the
/// `destination`'s rows for those keys (key and value columns by
/// destination name). Keys compare NULL-safe (a NULL key is a group of its
/// own), and so do values: a value turning NULL is a change.
pub async fn group_changes(
    aggregate: &Aggregate,
    touched: (SchemaRef, Vec<RecordBatch>),
    recomputed: (SchemaRef, Vec<RecordBatch>),
    destination: (SchemaRef, Vec<RecordBatch>),
) -> Result<GroupChanges, ComputeError> {
    let ctx = SessionContext::new();
    for (name, (schema, batches)) in [
        ("touched", touched),
        ("recomputed", recomputed),
        ("destination", destination),
    ] {
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    }
    // Each comparison in parentheses: without them sqlparser reads the
    // right side of `IS [NOT] DISTINCT FROM` on past a following AND/OR.
    let same = |left: &str, right: &str, names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|n| {
                let n = quote_ident(n);
                format!("({left}.{n} IS NOT DISTINCT FROM {right}.{n})")
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let key_names = || aggregate.keys.iter().map(|k| k.dest.as_str());
    let on = |l: &str, r: &str| same(l, r, &mut key_names());
    let differs = aggregate
        .values
        .iter()
        .map(|v| {
            let n = quote_ident(&v.dest);
            format!("(r.{n} IS DISTINCT FROM d.{n})")
        })
        .collect::<Vec<_>>();
    let changed = if differs.is_empty() {
        "FALSE".to_string()
    } else {
        differs.join(" OR ")
    };
    let upserts = ctx
        .sql(&format!(
            "SELECT r.* FROM recomputed r WHERE NOT EXISTS (SELECT 1 FROM destination d WHERE {} AND NOT ({changed}))",
            on("d", "r")
        ))
        .await?
        .collect()
        .await?;
    let keys = key_names()
        .map(quote_ident)
        .map(|k| format!("t.{k}"))
        .collect::<Vec<_>>();
    let deletes = ctx
        .sql(&format!(
            "SELECT {} FROM touched t WHERE EXISTS (SELECT 1 FROM destination d WHERE {}) AND NOT EXISTS (SELECT 1 FROM recomputed r WHERE {})",
            keys.join(", "),
            on("d", "t"),
            on("r", "t")
        ))
        .await?
        .collect()
        .await?;
    let recomputed_rows: u64 = ctx.table("recomputed").await?.count().await? as u64;
    let mut changes = GroupChanges {
        upserts,
        deletes,
        unchanged: 0,
    };
    changes.unchanged = recomputed_rows - changes.upsert_rows();
    Ok(changes)
}
