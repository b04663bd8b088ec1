//! Column types as a source table's catalog declares them, for pipeline
//! columns written without `data_type` (the spec's audit-columns example).
//!
//! Each database type maps to the SyncHub type that reads it without loss;
//! a type with no such mapping is reported, and the user gives `data_type`.

use std::collections::HashMap;

use arrow::datatypes::{DataType, TimeUnit};
use planner::model::quote_ident;
use planner::types::{ColumnType, DEFAULT_DECIMAL_PRECISION, DEFAULT_DECIMAL_SCALE};
use planner::Datastore;

use crate::registry::DeclaredColumn;
use crate::Result;

/// One table a source reads from: its main table or a joined one.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    pub schema: Option<String>,
    pub table: String,
}

impl CatalogTable {
    pub fn display_name(&self) -> String {
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
    let declared = crate::registry::connector(ds)?
        .declared_columns(ds, tables)
        .await?;
    let listed = tables
        .iter()
        .map(CatalogTable::display_name)
        .collect::<Vec<_>>()
        .join(", ");
    Ok(names
        .iter()
        .map(|name| {
            let holders: Vec<&DeclaredColumn> =
                declared.iter().filter(|c| &c.name == name).collect();
            let absent: Vec<String> = (0..tables.len())
                .filter(|i| !declared.iter().any(|c| c.table == *i))
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
                [c] => c.data_type.ok_or_else(|| {
                    format!(
                        "no data_type given, and the source's type of \"{name}\" ({}) has no SyncHub data_type to take; give data_type",
                        if c.declared.is_empty() { "none declared" } else { &c.declared }
                    )
                }),
                [a, b, ..] => Err(format!(
                    "no data_type given, and both {} and {} have a column \"{name}\"; give data_type",
                    tables[a.table].display_name(),
                    tables[b.table].display_name()
                )),
            };
            (name.clone(), answer)
        })
        .collect())
}

/// A `numeric`/`decimal` type's arguments as a decimal type; `None` past
/// 38 digits.
pub(crate) fn decimal(args: &[i64]) -> Option<ColumnType> {
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
pub(crate) fn split_type_args(text: &str) -> (String, Vec<i64>) {
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

/// The SyncHub type reading an Arrow type without loss.
pub fn arrow_column_type(ty: &DataType) -> Option<ColumnType> {
    Some(match ty {
        DataType::Int8 | DataType::Int16 => ColumnType::Int16,
        DataType::Int32 => ColumnType::Int32,
        DataType::Int64 => ColumnType::Int64,
        DataType::Float32 => ColumnType::Float32,
        DataType::Float64 => ColumnType::Float64,
        DataType::Decimal128(p, s) => ColumnType::Decimal {
            precision: *p,
            scale: *s,
        },
        DataType::Boolean => ColumnType::Bool,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ColumnType::Binary,
        DataType::Date32 => ColumnType::Date,
        DataType::Timestamp(TimeUnit::Microsecond, None) => ColumnType::Timestamp,
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => ColumnType::TimestampTz,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::postgres_type;
    use crate::sqlite::sqlite_type;

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
