//! ClickHouse in the connector registry, and its catalog.

use async_trait::async_trait;
use planner::model::{MappedColumn, TableRef};
use planner::types::{ColumnSpec, ColumnType};
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::client::{bytes_literal, table_name, Client};
use super::config::ClickHouseConnectionConfig;
use super::{ClickHouseSink, ClickHouseSource};
use crate::catalog::{decimal, split_type_args, CatalogTable};
use crate::registry::{Connector, DeclaredColumn};
use crate::{Result, Sink, Source};

pub struct ClickHouseConnector;

impl ConnectorType for ClickHouseConnector {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> std::result::Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
        Ok(Box::new(erased_serde::deserialize::<
            ClickHouseConnectionConfig,
        >(d)?))
    }
}

fn database_of(client: &Client, schema: Option<&str>) -> String {
    schema.map_or_else(|| client.database.clone(), str::to_string)
}

#[async_trait]
impl Connector for ClickHouseConnector {
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(ClickHouseSource::open(table, columns)?))
    }

    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
        Ok(Box::new(ClickHouseSink::open(table, columns)?))
    }

    async fn probe_empty(&self, table: &TableRef) -> Result<bool> {
        let client = Client::new(&table.datastore)?;
        let database = database_of(&client, table.schema.as_deref());
        let exists = client
            .text(&format!(
                "SELECT count() FROM system.tables WHERE database = {} AND name = {} FORMAT TSV",
                bytes_literal(database.as_bytes()),
                bytes_literal(table.table.as_bytes())
            ))
            .await?;
        if exists.trim() == "0" {
            return Ok(true);
        }
        let any = client
            .text(&format!(
                "SELECT count() FROM (SELECT 1 FROM {} LIMIT 1) FORMAT TSV",
                table_name(&database, &table.table)
            ))
            .await?;
        Ok(any.trim() == "0")
    }

    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>> {
        let client = Client::new(datastore)?;
        let mut out = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let database = database_of(&client, t.schema.as_deref());
            let text = client
                .text(&format!(
                    "SELECT name, type FROM system.columns WHERE database = {} AND table = {} FORMAT TSV",
                    bytes_literal(database.as_bytes()),
                    bytes_literal(t.table.as_bytes())
                ))
                .await?;
            for (name, declared) in text.lines().filter_map(|l| l.split_once('\t')) {
                if name == super::VERSION_COLUMN {
                    continue;
                }
                out.push(DeclaredColumn {
                    table: i,
                    name: name.to_string(),
                    data_type: clickhouse_type(declared),
                    declared: declared.to_string(),
                });
            }
        }
        Ok(out)
    }
}

/// The SyncHub type reading a ClickHouse column type without loss, if
/// there is one. SyncHub's own stored forms (days, microseconds as
/// integers) read as the integers they are: the pipeline names the type.
pub fn clickhouse_type(declared: &str) -> Option<ColumnType> {
    let inner = declared
        .strip_prefix("Nullable(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(declared);
    let (base, args) = split_type_args(inner);
    Some(match base.trim() {
        "int8" | "int16" | "uint8" => ColumnType::Int16,
        "uint16" | "int32" => ColumnType::Int32,
        "uint32" | "int64" => ColumnType::Int64,
        "float32" => ColumnType::Float32,
        "float64" => ColumnType::Float64,
        "decimal" => decimal(&args)?,
        "string" => ColumnType::Text,
        "fixedstring" => ColumnType::Binary,
        "uuid" => ColumnType::Uuid,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::TimestampTz,
        _ => return None,
    })
}
