//! The SQLite catalog: declared column types, and the SyncHub type of each.

use planner::types::ColumnType;

use crate::catalog::{decimal, split_type_args, CatalogTable};
use crate::registry::DeclaredColumn;
use crate::Result;

/// Every column of `tables`, with its declared type.
pub(super) fn declared_columns(
    path: &std::path::Path,
    tables: &[CatalogTable],
) -> Result<Vec<DeclaredColumn>> {
    let conn = super::open_connection(path, false)?;
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let schema = t.schema.as_deref().unwrap_or("main");
        let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1, ?2)")?;
        let rows = stmt.query_map([&t.table, schema], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (name, declared) = row?;
            out.push(DeclaredColumn {
                table: i,
                name,
                data_type: sqlite_type(&declared),
                declared,
            });
        }
    }
    Ok(out)
}

/// The SyncHub type of a SQLite declared column type, by the names SyncHub
/// itself declares and their common spellings; a bare affinity keyword
/// takes the type SQLite stores it as.
pub fn sqlite_type(declared: &str) -> Option<ColumnType> {
    let (base, args) = split_type_args(declared);
    Some(match base.as_str() {
        "smallint" | "int2" => ColumnType::Int16,
        "int" | "integer" | "bigint" | "int8" => ColumnType::Int64,
        "real" | "double" | "double precision" | "float" => ColumnType::Float64,
        "numeric" | "decimal" => decimal(&args)?,
        "bool" | "boolean" => ColumnType::Bool,
        "varchar" | "character varying" | "char" | "character" | "nvarchar" => ColumnType::String {
            max_len: args.first().copied().map(|n| n as u32),
        },
        "text" | "clob" => ColumnType::Text,
        "blob" => ColumnType::Binary,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time,
        "datetime" | "timestamp" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::TimestampTz,
        "uuid" => ColumnType::Uuid,
        "json" | "jsonb" => ColumnType::Json,
        _ => return None,
    })
}
