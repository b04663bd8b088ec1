//! The process's memory tables, by store and table name.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, MutexGuard};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use planner::model::TableRef;
use planner::Datastore;

use super::config::MemoryConnection;
use crate::catalog::CatalogTable;
use crate::registry::DeclaredColumn;
use crate::traits::{Checkpoint, CommitToken};
use crate::{ConnectorError, Result};

/// One table: its rows in one batch, and the checkpoints written with them.
pub(super) struct MemTable {
    pub rows: RecordBatch,
    /// (pipeline, strategy, run id) and what it committed.
    pub checkpoints: Vec<((String, String, String), Checkpoint)>,
    /// New for each table created, so a dropped and re-created table is
    /// told from the old one.
    pub identity: String,
    /// The tokens rows were committed under, kept with the rows as a Delta
    /// log keeps its `txn` actions (non-transactional sinks only).
    pub tokens: HashSet<CommitToken>,
}

type Tables = HashMap<(String, String), MemTable>;

static TABLES: LazyLock<Mutex<Tables>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The tables, locked. A test that panicked while holding them leaves them
/// as they were, which is as good as any state for the next test.
pub(super) fn tables() -> MutexGuard<'static, Tables> {
    TABLES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key of `table` in its store.
pub(super) fn table_key(table: &TableRef) -> Result<(String, String)> {
    Ok((
        store_of(&table.datastore)?,
        qualified(table.schema.as_deref(), &table.table),
    ))
}

pub(super) fn store_of(datastore: &Datastore) -> Result<String> {
    connection_of(datastore).map(|c| c.store.clone())
}

pub(super) fn connection_of(datastore: &Datastore) -> Result<&MemoryConnection> {
    datastore
        .connection_as::<MemoryConnection>()
        .ok_or_else(|| {
            ConnectorError::Config(format!("datastore \"{}\" is not memory", datastore.name()))
        })
}

/// Test-only: makes the next recording of `partition_id`'s checkpoint in
/// table `table` of `store` fail, as if the process had died between a
/// non-transactional commit of its rows and its checkpoint.
#[cfg(feature = "fault-injection")]
pub fn lose_next_checkpoint(store: &str, table: &str, partition_id: &str) {
    lost_checkpoints().insert((
        store.to_string(),
        table.to_string(),
        partition_id.to_string(),
    ));
}

/// Whether the checkpoint of `partition_id` in table `key` is to be lost
/// (once) by [`lose_next_checkpoint`].
pub(super) fn checkpoint_lost(key: &(String, String), partition_id: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        let lost = (key.0.clone(), key.1.clone(), partition_id.to_string());
        lost_checkpoints().remove(&lost)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (key, partition_id);
        false
    }
}

#[cfg(feature = "fault-injection")]
fn lost_checkpoints() -> MutexGuard<'static, HashSet<(String, String, String)>> {
    static LOST: LazyLock<Mutex<HashSet<(String, String, String)>>> =
        LazyLock::new(|| Mutex::new(HashSet::new()));
    LOST.lock().unwrap_or_else(|e| e.into_inner())
}

fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) => format!("{s}.{table}"),
        None => table.to_string(),
    }
}

/// Puts `rows` as table `table` (`schema.table` or `table`) of `store`,
/// replacing any table of that name.
pub fn put_table(store: &str, table: &str, rows: RecordBatch) {
    tables().insert(
        (store.to_string(), table.to_string()),
        MemTable {
            rows,
            checkpoints: Vec::new(),
            identity: new_identity(),
            tokens: HashSet::new(),
        },
    );
}

/// The rows of table `table` of `store`, `None` when there is no such table.
pub fn table_rows(store: &str, table: &str) -> Option<RecordBatch> {
    tables()
        .get(&(store.to_string(), table.to_string()))
        .map(|t| t.rows.clone())
}

pub(super) fn new_identity() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "memory:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `batches` as one batch of `schema`.
pub(super) fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    Ok(concat_batches(schema, batches)?)
}

/// The column of `batch` named `name`.
pub(super) fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

pub(super) fn declared_columns(
    datastore: &Datastore,
    tables_asked: &[CatalogTable],
) -> Result<Vec<DeclaredColumn>> {
    let store = store_of(datastore)?;
    let tables = tables();
    let mut out = Vec::new();
    for (i, t) in tables_asked.iter().enumerate() {
        let key = (store.clone(), qualified(t.schema.as_deref(), &t.table));
        if let Some(table) = tables.get(&key) {
            for field in table.rows.schema().fields() {
                out.push(DeclaredColumn {
                    table: i,
                    name: field.name().clone(),
                    declared: field.data_type().to_string(),
                    data_type: crate::catalog::arrow_column_type(field.data_type()),
                });
            }
        }
    }
    Ok(out)
}
