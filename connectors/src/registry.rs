//! Every connector, by the type name a datastore gives: the planner reads
//! datastores through [`types`], the engine opens sources and sinks through
//! [`connector`]. Adding a connector is a folder and a line in
//! [`CONNECTORS`].

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::{ColumnSpec, ColumnType};
use planner::{ConnectorType, ConnectorTypes, Datastore};

use crate::catalog::CatalogTable;
use crate::{ConnectorError, Result, Sink, Source};

/// A column as a table's catalog declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredColumn {
    /// Index of its table in the tables asked about.
    pub table: usize,
    pub name: String,
    /// The type as the database names it.
    pub declared: String,
    /// The SyncHub type reading it without loss, if there is one.
    pub data_type: Option<ColumnType>,
}

/// What the engine asks of a connector: its config half is
/// [`ConnectorType`]; this is the runtime half that config builds.
#[async_trait]
pub trait Connector: ConnectorType {
    /// A source reading `table` as `columns`.
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>>;

    /// A sink writing `columns` into `table`.
    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>>;

    /// Whether `table` holds no rows, or does not exist yet; creates and
    /// changes nothing (`synchub plan` asks it).
    async fn probe_empty(&self, table: &TableRef) -> Result<bool>;

    /// The columns of `tables` as the store's catalog declares them.
    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>>;
}

/// The registered connectors.
static CONNECTORS: LazyLock<Vec<Arc<dyn Connector>>> = LazyLock::new(|| {
    vec![
        Arc::new(crate::postgres::PostgresConnector),
        Arc::new(crate::sqlite::SqliteConnector),
        Arc::new(crate::memory::MemoryConnector),
        Arc::new(crate::mysql::MySqlConnector),
        Arc::new(crate::clickhouse::ClickHouseConnector),
        #[cfg(feature = "delta")]
        Arc::new(crate::delta::DeltaConnector),
    ]
});

/// The connector types, for reading datastores files.
pub fn types() -> ConnectorTypes {
    ConnectorTypes::new(
        CONNECTORS
            .iter()
            .map(|c| c.clone() as Arc<dyn ConnectorType>)
            .collect(),
    )
}

/// Whether the destination `table` holds no rows (see
/// [`Connector::probe_empty`]).
pub async fn probe_empty(table: &TableRef) -> Result<bool> {
    connector(&table.datastore)?.probe_empty(table).await
}

/// The connector of a datastore's type.
pub fn connector(datastore: &Datastore) -> Result<&'static dyn Connector> {
    let kind = datastore.kind();
    CONNECTORS
        .iter()
        .find(|c| c.name() == kind)
        .map(|c| c.as_ref())
        .ok_or_else(|| {
            ConnectorError::Config(format!(
                "datastore \"{}\" is of type \"{kind}\", which no connector handles",
                datastore.name()
            ))
        })
}
