//! SQLite in the connector registry.

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::config::SqliteConnectionConfig;
use super::{SqliteSink, SqliteSource};
use crate::catalog::CatalogTable;
use crate::registry::{Connector, DeclaredColumn};
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
