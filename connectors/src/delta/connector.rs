//! Delta Lake in the connector registry.

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::config::DeltaConnectionConfig;
use super::table::{self, TableLocation};
use super::{DeltaSink, DeltaSource};
use crate::catalog::CatalogTable;
use crate::registry::{Connector, DeclaredColumn};
use crate::{Result, Sink, Source};

pub struct DeltaConnector;

impl ConnectorType for DeltaConnector {
    fn name(&self) -> &'static str {
        "delta"
    }

    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> std::result::Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
        Ok(Box::new(
            erased_serde::deserialize::<DeltaConnectionConfig>(d)?,
        ))
    }
}

#[async_trait]
impl Connector for DeltaConnector {
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(DeltaSource::open(table, columns)?))
    }

    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
        Ok(Box::new(DeltaSink::open(table, columns)?))
    }

    async fn probe_empty(&self, table: &TableRef) -> Result<bool> {
        let location = TableLocation::of(table)?;
        if location.missing_locally() {
            return Ok(true);
        }
        let table = location.open().await?;
        Ok(table::is_not_a_table(&table)
            || table
                .snapshot()
                .map(|s| s.log_data().num_files() == 0)
                .unwrap_or(true))
    }

    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>> {
        let mut out = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let table_ref = TableRef {
                datastore: datastore.clone(),
                schema: t.schema.clone(),
                table: t.table.clone(),
                alias: None,
                joins: Vec::new(),
                filters: Vec::new(),
                grouped: None,
            };
            let location = TableLocation::of(&table_ref)?;
            if location.missing_locally() {
                continue;
            }
            let table = location.open().await?;
            if table::is_not_a_table(&table) {
                continue;
            }
            let schema = table
                .snapshot()
                .map_err(|e| location.error(e))?
                .snapshot()
                .arrow_schema();
            for f in schema.fields() {
                out.push(DeclaredColumn {
                    table: i,
                    name: f.name().clone(),
                    declared: f.data_type().to_string(),
                    data_type: crate::catalog::arrow_column_type(f.data_type()),
                });
            }
        }
        Ok(out)
    }
}
