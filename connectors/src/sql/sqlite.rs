//! SQLite's SQL: `?n` placeholders, JSON arrays for lists, its storage
//! classes as type names.

use planner::types::ColumnType;

use super::Dialect;

pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn identifier_quote(&self) -> char {
        '"'
    }

    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }

    /// Integers are bound as integers.
    fn bigint_placeholder(&self, n: usize) -> String {
        self.placeholder(n)
    }

    fn bigint(&self, e: &str) -> String {
        format!("CAST({e} AS INTEGER)")
    }

    /// The keys bound as one JSON array.
    fn integer_key_in(&self, key: &str, n: usize) -> String {
        format!("{key} IN (SELECT value FROM json_each(?{n}))")
    }

    /// The declared type gives the column its affinity; the codec stores
    /// what the type does not (dates, decimals, UUIDs as canonical text).
    fn type_ddl(&self, t: &ColumnType) -> String {
        match t {
            ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 | ColumnType::Bool => {
                "INTEGER"
            }
            ColumnType::Float32 | ColumnType::Float64 => "REAL",
            ColumnType::Binary => "BLOB",
            ColumnType::Decimal { .. }
            | ColumnType::String { .. }
            | ColumnType::Text
            | ColumnType::Json
            | ColumnType::Date
            | ColumnType::Time
            | ColumnType::Timestamp
            | ColumnType::TimestampTz
            | ColumnType::Uuid => "TEXT",
        }
        .into()
    }

    /// The hash is a bigint, or 16 hex digits in a text column.
    fn computed_hash(&self, ty: &ColumnType) -> String {
        if *ty == ColumnType::Int64 {
            "CAST(NULL AS bigint)".into()
        } else {
            "CAST(NULL AS text)".into()
        }
    }
}
