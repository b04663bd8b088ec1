//! Sources and sinks per database system, behind the `Source` and `Sink` traits.

pub mod catalog;
pub mod conform;
pub mod error;
pub mod pghash;
pub mod postgres;
pub mod rowhash;
pub mod sql;
pub mod sqlite;
pub mod traits;

pub use error::{ConnectorError, ErrorDomain, Result};
pub use traits::{
    BatchStream, BucketChecksum, Buckets, Checkpoint, Checksum, LockAttempt, RunIdentity, Sink,
    Source, WriteStats,
};

use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;
use planner::Datastore;

/// Opens the source connector for the table's datastore type.
pub async fn open_source(table: &TableRef, columns: &[MappedColumn]) -> Result<Box<dyn Source>> {
    Ok(match &table.datastore {
        Datastore::Postgres { .. } => {
            Box::new(postgres::PostgresSource::open(table, columns).await?)
        }
        Datastore::Sqlite { .. } => Box::new(sqlite::SqliteSource::open(table, columns).await?),
    })
}

/// Opens the sink connector for the table's datastore type.
pub async fn open_sink(table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
    Ok(match &table.datastore {
        Datastore::Postgres { .. } => Box::new(postgres::PostgresSink::open(table, columns).await?),
        Datastore::Sqlite { .. } => Box::new(sqlite::SqliteSink::open(table, columns).await?),
    })
}
