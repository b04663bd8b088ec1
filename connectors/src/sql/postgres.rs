//! PostgreSQL's SQL: `$n` placeholders, `::` casts, its type names.

use planner::types::ColumnType;

use super::Dialect;

pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn identifier_quote(&self) -> char {
        '"'
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn bigint_placeholder(&self, n: usize) -> String {
        format!("${n}::bigint")
    }

    fn bigint(&self, e: &str) -> String {
        format!("({e})::bigint")
    }

    /// The keys bound as one array.
    fn integer_key_in(&self, key: &str, n: usize) -> String {
        format!("{key} = ANY(${n}::bigint[])")
    }

    fn type_ddl(&self, t: &ColumnType) -> String {
        match t {
            ColumnType::Int16 => "smallint".into(),
            ColumnType::Int32 => "integer".into(),
            ColumnType::Int64 => "bigint".into(),
            ColumnType::Float32 => "real".into(),
            ColumnType::Float64 => "double precision".into(),
            ColumnType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
            ColumnType::Bool => "boolean".into(),
            ColumnType::String { max_len: Some(n) } => format!("varchar({n})"),
            ColumnType::String { max_len: None } | ColumnType::Text => "text".into(),
            ColumnType::Binary => "bytea".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Time => "time".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::TimestampTz => "timestamptz".into(),
            ColumnType::Uuid => "uuid".into(),
            ColumnType::Json => "jsonb".into(),
        }
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
