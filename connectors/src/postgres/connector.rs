//! PostgreSQL in the connector registry.

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::config::PostgresConnectionConfig;
use super::{PostgresSink, PostgresSource};
use crate::catalog::CatalogTable;
use crate::registry::{Connector, DeclaredColumn};
use crate::sql::{Dialect, PostgresDialect};
use crate::{Result, Sink, Source};

pub struct PostgresConnector;

impl ConnectorType for PostgresConnector {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["postgresql"]
    }

    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> std::result::Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
        Ok(Box::new(erased_serde::deserialize::<
            PostgresConnectionConfig,
        >(d)?))
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(PostgresSource::open(table, columns).await?))
    }

    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
        Ok(Box::new(PostgresSink::open(table, columns).await?))
    }

    async fn probe_empty(&self, table: &TableRef) -> Result<bool> {
        let client = super::connect(&table.datastore).await?;
        let name = PostgresDialect.table(table.schema.as_deref(), &table.table);
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await?
            .get(0);
        if !exists {
            return Ok(true);
        }
        let empty: bool = client
            .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {name})"), &[])
            .await?
            .get(0);
        Ok(empty)
    }

    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>> {
        super::catalog::declared_columns(datastore, tables).await
    }
}
