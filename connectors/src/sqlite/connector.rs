//! SQLite in the connector registry.

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::config::SqliteConnectionConfig;
use super::{SqliteSink, SqliteSource};
use crate::catalog::CatalogTable;
use crate::registry::{Connector, DeclaredColumn};
use crate::sql::{Dialect, SqliteDialect};
use crate::{ConnectorError, Result, Sink, Source};

pub struct SqliteConnector;

impl ConnectorType for SqliteConnector {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> std::result::Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
        Ok(Box::new(
            erased_serde::deserialize::<SqliteConnectionConfig>(d)?,
        ))
    }
}

#[async_trait]
impl Connector for SqliteConnector {
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(SqliteSource::open(table, columns).await?))
    }

    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
        Ok(Box::new(SqliteSink::open(table, columns).await?))
    }

    async fn probe_empty(&self, table: &TableRef) -> Result<bool> {
        let path = super::connect::datastore_path(&table.datastore)?;
        let name = table.table.clone();
        let quoted = SqliteDialect.table(table.schema.as_deref(), &table.table);
        tokio::task::spawn_blocking(move || -> Result<bool> {
            // No file yet: nothing to open, and opening would create it.
            if !path.exists() {
                return Ok(true);
            }
            let conn = super::open_connection(&path, false)?;
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [&name],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(true);
            }
            Ok(conn.query_row(
                &format!("SELECT NOT EXISTS (SELECT 1 FROM {quoted})"),
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .map_err(|e| ConnectorError::Other(format!("probe failed: {e}")))?
    }

    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>> {
        let path = super::connect::datastore_path(datastore)?;
        let tables = tables.to_vec();
        tokio::task::spawn_blocking(move || super::catalog::declared_columns(&path, &tables))
            .await
            .map_err(|e| ConnectorError::Other(format!("catalog lookup failed: {e}")))?
    }
}
