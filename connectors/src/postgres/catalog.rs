//! The PostgreSQL catalog: declared column types, and the SyncHub type of each.

use planner::types::ColumnType;
use planner::Datastore;

use crate::catalog::{decimal, split_type_args, CatalogTable};
use crate::registry::DeclaredColumn;
use crate::sql::{Dialect, PostgresDialect};
use crate::{ConnectorError, Result};

/// Every column of `tables`, with its `format_type`.
pub(super) async fn declared_columns(
    ds: &Datastore,
    tables: &[CatalogTable],
) -> Result<Vec<DeclaredColumn>> {
    let client = super::connect(ds).await?;
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let schema = t.schema.as_deref().unwrap_or("public");
        let qualified = PostgresDialect.table(Some(schema), &t.table);
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[&qualified],
            )
            .await
            .map_err(|e| {
                ConnectorError::Other(format!("cannot read the catalog of {qualified}: {e}"))
            })?;
        out.extend(rows.iter().map(|r| {
            let declared: String = r.get(1);
            DeclaredColumn {
                table: i,
                name: r.get(0),
                data_type: postgres_type(&declared),
                declared,
            }
        }));
    }
    Ok(out)
}

/// The SyncHub type of a PostgreSQL `format_type` text.
pub fn postgres_type(formatted: &str) -> Option<ColumnType> {
    let (base, args) = split_type_args(formatted);
    Some(match base.as_str() {
        "smallint" => ColumnType::Int16,
        "integer" => ColumnType::Int32,
        "bigint" => ColumnType::Int64,
        "real" => ColumnType::Float32,
        "double precision" => ColumnType::Float64,
        "numeric" => decimal(&args)?,
        "boolean" => ColumnType::Bool,
        "character varying" | "character" => ColumnType::String {
            max_len: args.first().copied().map(|n| n as u32),
        },
        "text" => ColumnType::Text,
        "bytea" => ColumnType::Binary,
        "date" => ColumnType::Date,
        "time without time zone" => ColumnType::Time,
        "timestamp without time zone" => ColumnType::Timestamp,
        "timestamp with time zone" => ColumnType::TimestampTz,
        "uuid" => ColumnType::Uuid,
        "json" | "jsonb" => ColumnType::Json,
        _ => return None,
    })
}
