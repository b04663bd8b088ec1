//! The memory connector in the registry.

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::ColumnSpec;
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::config::MemoryConnectionConfig;
use super::{MemorySink, MemorySource};
use crate::catalog::CatalogTable;
use crate::registry::{Connector, DeclaredColumn};
use crate::{Result, Sink, Source};

pub struct MemoryConnector;

impl ConnectorType for MemoryConnector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> std::result::Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
        Ok(Box::new(
            erased_serde::deserialize::<MemoryConnectionConfig>(d)?,
        ))
    }
}

#[async_trait]
impl Connector for MemoryConnector {
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(MemorySource::open(table, columns)?))
    }

    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
        Ok(Box::new(MemorySink::open(table, columns)?))
    }

    async fn probe_empty(&self, table: &TableRef) -> Result<bool> {
        let key = super::store::table_key(table)?;
        Ok(super::store::tables()
            .get(&key)
            .is_none_or(|t| t.rows.num_rows() == 0))
    }

    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>> {
        super::store::declared_columns(datastore, tables)
    }
}
