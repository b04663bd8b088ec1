//! Sources and sinks per database system, behind the `Source` and `Sink` traits.

pub mod bounds;
pub mod catalog;
pub mod clickhouse;
pub mod conform;
#[cfg(feature = "delta")]
pub mod delta;
pub mod error;
pub mod memory;
pub mod mysql;
pub mod pghash;
pub mod postgres;
pub mod registry;
pub mod rowhash;
pub mod sql;
pub mod sqlite;
pub mod traits;

pub use error::{ConnectorError, ErrorDomain, ErrorKind, Result};
pub use traits::{
    BatchStream, BucketChecksum, Buckets, Checkpoint, Checksum, CommitToken, HashPushdown,
    LockAttempt, RunIdentity, Sink, SinkCapabilities, Source, WriteMode, WriteStats,
};

use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;

/// Opens the source connector for the table's datastore type.
pub async fn open_source(table: &TableRef, columns: &[MappedColumn]) -> Result<Box<dyn Source>> {
    registry::connector(&table.datastore)?
        .open_source(table, columns)
        .await
}

/// Opens the sink connector for the table's datastore type.
pub async fn open_sink(table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
    registry::connector(&table.datastore)?
        .open_sink(table, columns)
        .await
}
