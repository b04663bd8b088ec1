//! MySQL and MariaDB in the connector registry, and their catalog.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use planner::model::{MappedColumn, TableRef};
use planner::types::{ColumnSpec, ColumnType};
use planner::{ConnectionSpec, ConnectorType, Datastore};

use super::config::MySqlConnectionConfig;
use super::connect::{connect, mysql_error};
use super::{MySqlSink, MySqlSource};
use crate::catalog::{decimal, split_type_args, CatalogTable};
use crate::registry::{Connector, DeclaredColumn};
use crate::sql::{Dialect, MySqlDialect};
use crate::{Result, Sink, Source};

pub struct MySqlConnector;

impl ConnectorType for MySqlConnector {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["mariadb"]
    }

    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> std::result::Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
        Ok(Box::new(
            erased_serde::deserialize::<MySqlConnectionConfig>(d)?,
        ))
    }
}

/// The database `table` is in: its schema, or the datastore's `dbname`.
fn database_of(table_schema: Option<&str>, datastore: &Datastore) -> String {
    table_schema
        .or(datastore.default_schema())
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl Connector for MySqlConnector {
    async fn open_source(
        &self,
        table: &TableRef,
        columns: &[MappedColumn],
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(MySqlSource::open(table, columns).await?))
    }

    async fn open_sink(&self, table: &TableRef, columns: &[ColumnSpec]) -> Result<Box<dyn Sink>> {
        Ok(Box::new(MySqlSink::open(table, columns).await?))
    }

    async fn probe_empty(&self, table: &TableRef) -> Result<bool> {
        let mut conn = connect(&table.datastore).await?;
        let database = database_of(table.schema.as_deref(), &table.datastore);
        let exists: Option<i64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&database, &table.table),
            )
            .await
            .map_err(mysql_error)?;
        if exists.unwrap_or(0) == 0 {
            return Ok(true);
        }
        let name = MySqlDialect.table(Some(&database), &table.table);
        let any: Option<i64> = conn
            .query_first(format!("SELECT EXISTS (SELECT 1 FROM {name})"))
            .await
            .map_err(mysql_error)?;
        Ok(any != Some(1))
    }

    async fn declared_columns(
        &self,
        datastore: &Datastore,
        tables: &[CatalogTable],
    ) -> Result<Vec<DeclaredColumn>> {
        let mut conn = connect(datastore).await?;
        let mut out = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let database = database_of(t.schema.as_deref(), datastore);
            let columns: Vec<(String, String)> = conn
                .exec(
                    "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                    (&database, &t.table),
                )
                .await
                .map_err(mysql_error)?;
            out.extend(columns.into_iter().map(|(name, declared)| DeclaredColumn {
                table: i,
                name,
                data_type: mysql_type(&declared),
                declared,
            }));
        }
        Ok(out)
    }
}

/// The SyncHub type reading a MySQL column type (`COLUMN_TYPE`, as
/// `int(11) unsigned` or `decimal(12,2)`) without loss, if there is one.
pub fn mysql_type(declared: &str) -> Option<ColumnType> {
    let (base, args) = split_type_args(declared);
    let lower = declared.to_ascii_lowercase();
    let unsigned = lower.contains("unsigned");
    Some(match base.trim() {
        // tinyint(1) is how MySQL spells BOOLEAN.
        "tinyint" if args.first() == Some(&1) => ColumnType::Bool,
        "tinyint" => ColumnType::Int16,
        "smallint" if unsigned => ColumnType::Int32,
        "smallint" => ColumnType::Int16,
        "mediumint" | "int" | "integer" if unsigned => ColumnType::Int64,
        "mediumint" | "int" | "integer" => ColumnType::Int32,
        // An unsigned bigint may exceed the signed range: no lossless type.
        "bigint" if unsigned => return None,
        "bigint" => ColumnType::Int64,
        "float" => ColumnType::Float32,
        "double" | "real" => ColumnType::Float64,
        "decimal" | "numeric" => decimal(&args)?,
        "varchar" | "char" => ColumnType::String {
            max_len: args.first().map(|n| *n as u32),
        },
        "tinytext" | "text" | "mediumtext" | "longtext" => ColumnType::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnType::Binary
        }
        "json" => ColumnType::Json,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time,
        "datetime" => ColumnType::Timestamp,
        // TIMESTAMP values are UTC instants, read in the session's UTC.
        "timestamp" => ColumnType::TimestampTz,
        _ => return None,
    })
}
