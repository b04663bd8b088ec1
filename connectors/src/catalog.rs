//! Column types as a source table's catalog declares them, for pipeline
//! columns written without `data_type` (the spec's audit-columns example).
//!
//! Each database type maps to the SyncHub type that reads it without loss;
//! a type with no such mapping is reported, and the user gives `data_type`.

use std::collections::HashMap;

use planner::model::quote_ident;
use planner::types::{ColumnType, DEFAULT_DECIMAL_PRECISION, DEFAULT_DECIMAL_SCALE};
use planner::Datastore;

use crate::{ConnectorError, Result};

/// One table a source reads from: its main table or a joined one.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    pub schema: Option<String>,
    pub table: String,
}

impl CatalogTable {
    fn display_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.table)),
            None => quote_ident(&self.table),
        }
    }
}

/// For each of `names`: the type its column has in `tables` (the first
/// table holding a column of that name, as the source's SQL resolves an
/// unqualified name when only one table has it), or why none can be given.
pub async fn column_types(
    ds: &Datastore,
    tables: &[CatalogTable],
    names: &[String],
) -> Result<HashMap<String, std::result::Result<ColumnType, String>>> {
    // Named as the source's SQL reaches them: in the datastore's schema
    // unless the pipeline gives one.
    let tables: Vec<CatalogTable> = tables
        .iter()
        .map(|t| CatalogTable {
            schema: t.schema.clone().or(ds.default_schema().map(str::to_string)),
            table: t.table.clone(),
        })
        .collect();
    let tables = tables.as_slice();
    let declared = match ds {
        Datastore::Postgres { .. } => postgres_columns(ds, tables).await?,
        Datastore::Sqlite { path, .. } => {
            let path = path.clone();
            let tables = tables.to_vec();
            tokio::task::spawn_blocking(move || sqlite_columns(&path, &tables))
                .await
                .map_err(|e| ConnectorError::Other(format!("catalog lookup failed: {e}")))??
        }
    };
    let listed = tables
        .iter()
        .map(CatalogTable::display_name)
        .collect::<Vec<_>>()
        .join(", ");
    Ok(names
        .iter()
        .map(|name| {
            let holders: Vec<&(usize, String, String)> =
                declared.iter().filter(|(_, col, _)| col == name).collect();
            let absent: Vec<String> = (0..tables.len())
                .filter(|i| !declared.iter().any(|(t, _, _)| t == i))
                .map(|i| tables[i].display_name())
                .collect();
            let answer = match holders.as_slice() {
                [] if !absent.is_empty() => Err(format!(
                    "no data_type given, and the source table {} does not exist to take it from; create it, or give data_type",
                    absent.join(", ")
                )),
                [] => Err(format!(
                    "no data_type given, and the source ({listed}) has no column \"{name}\" to take it from; give data_type"
                )),
                [(_, _, ty)] => {
                    let parsed = match ds {
                        Datastore::Postgres { .. } => postgres_type(ty),
                        Datastore::Sqlite { .. } => sqlite_type(ty),
                    };
                    parsed.ok_or_else(|| {
                        format!(
                            "no data_type given, and the source's type of \"{name}\" ({}) has no SyncHub data_type to take; give data_type",
                            if ty.is_empty() { "none declared" } else { ty }
                        )
                    })
                }
                [(a, _, _), (b, _, _), ..] => Err(format!(
                    "no data_type given, and both {} and {} have a column \"{name}\"; give data_type",
                    tables[*a].display_name(),
                    tables[*b].display_name()
                )),
            };
            (name.clone(), answer)
        })
        .collect())
}

/// (table index, column, `format_type`) of every column of `tables`.
async fn postgres_columns(
    ds: &Datastore,
    tables: &[CatalogTable],
) -> Result<Vec<(usize, String, String)>> {
    let client = crate::postgres::connect(ds).await?;
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let schema = t.schema.as_deref().unwrap_or("public");
        let qualified = format!("{}.{}", quote_ident(schema), quote_ident(&t.table));
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
        out.extend(rows.iter().map(|r| (i, r.get(0), r.get(1))));
    }
    Ok(out)
}

/// (table index, column, declared type) of every column of `tables`.
fn sqlite_columns(
    path: &std::path::Path,
    tables: &[CatalogTable],
) -> Result<Vec<(usize, String, String)>> {
    let conn = crate::sqlite::open_connection(path, false)?;
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let schema = t.schema.as_deref().unwrap_or("main");
        let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1, ?2)")?;
        let rows = stmt.query_map([&t.table, schema], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (name, ty) = row?;
            out.push((i, name, ty));
        }
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

fn decimal(args: &[i64]) -> Option<ColumnType> {
    Some(match args {
        [] => ColumnType::Decimal {
            precision: DEFAULT_DECIMAL_PRECISION,
            scale: DEFAULT_DECIMAL_SCALE,
        },
        [p] => ColumnType::Decimal {
            precision: u8::try_from(*p).ok().filter(|p| (1..=38).contains(p))?,
            scale: 0,
        },
        [p, s] => ColumnType::Decimal {
            precision: u8::try_from(*p).ok().filter(|p| (1..=38).contains(p))?,
            scale: i8::try_from(*s).ok()?,
        },
        _ => return None,
    })
}

/// `numeric(12,2)` → (`numeric`, [12, 2]); lower case, spaces collapsed.
fn split_type_args(text: &str) -> (String, Vec<i64>) {
    let lower = text.trim().to_ascii_lowercase();
    let (base, args) = match lower.split_once('(') {
        Some((base, rest)) => {
            let inner = rest.split_once(')').map_or(rest, |(inner, _)| inner);
            let args = inner
                .split(',')
                .filter_map(|a| a.trim().parse::<i64>().ok())
                .collect();
            // `timestamp(3) with time zone`: the words after the arguments.
            let after = rest.split_once(')').map_or("", |(_, after)| after);
            (format!("{} {}", base.trim(), after.trim()), args)
        }
        None => (lower, Vec::new()),
    };
    (base.split_whitespace().collect::<Vec<_>>().join(" "), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_types_map_to_the_type_that_reads_them() {
        for (pg, want) in [
            ("bigint", ColumnType::Int64),
            (
                "numeric(12,2)",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            (
                "character varying(40)",
                ColumnType::String { max_len: Some(40) },
            ),
            ("character varying", ColumnType::String { max_len: None }),
            ("timestamp(3) with time zone", ColumnType::TimestampTz),
            ("timestamp without time zone", ColumnType::Timestamp),
            ("jsonb", ColumnType::Json),
        ] {
            assert_eq!(postgres_type(pg), Some(want), "{pg}");
        }
        assert_eq!(postgres_type("interval"), None);
        assert_eq!(postgres_type("numeric(50,2)"), None);
    }

    #[test]
    fn sqlite_declared_types_map_to_the_type_that_reads_them() {
        for (declared, want) in [
            ("INTEGER", ColumnType::Int64),
            (
                "DECIMAL(10, 3)",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 3,
                },
            ),
            ("VARCHAR(20)", ColumnType::String { max_len: Some(20) }),
            ("DATETIME", ColumnType::Timestamp),
            ("REAL", ColumnType::Float64),
        ] {
            assert_eq!(sqlite_type(declared), Some(want), "{declared}");
        }
        assert_eq!(sqlite_type(""), None);
        assert_eq!(sqlite_type("WIDGET"), None);
    }
}
