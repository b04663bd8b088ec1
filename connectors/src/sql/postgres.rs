//! PostgreSQL's SQL: `$n` placeholders, `::` casts, its type names.

use planner::types::ColumnType;

use super::{Dialect, KeyKind};

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

    /// Each key column's values bound as one array: one key column is
    /// matched with `= ANY`, which the key index answers probe by probe;
    /// several are the rows of the arrays unnested side by side.
    fn listed_keys(&self, keys: &[(KeyKind, ColumnType)], names: &[String], n: usize) -> String {
        let arrays: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (kind, _))| match kind {
                KeyKind::Int => format!("${}::bigint[]", n + i),
                KeyKind::Text => format!("${}::text[]", n + i),
            })
            .collect();
        let columns: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
        let items: Vec<String> = keys
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, ((_, ty), name))| {
                format!(
                    "CAST(k{i} AS {}) AS {}",
                    self.type_ddl(ty),
                    self.quote_ident(name)
                )
            })
            .collect();
        format!(
            "SELECT {} FROM unnest({}) AS synchub_listed({})",
            items.join(", "),
            arrays.join(", "),
            columns.join(", ")
        )
    }

    fn keys_in(&self, keys: &[(String, KeyKind)], n: usize) -> String {
        let array = |i: usize, kind: KeyKind| {
            let ty = match kind {
                KeyKind::Int => "bigint",
                KeyKind::Text => "text",
            };
            format!("${}::{ty}[]", n + i)
        };
        match keys {
            [(key, kind)] => format!("{key} = ANY({})", array(0, *kind)),
            _ => {
                let columns: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                let arrays: Vec<String> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| array(i, *kind))
                    .collect();
                format!(
                    "({}) IN (SELECT * FROM unnest({}))",
                    columns.join(", "),
                    arrays.join(", ")
                )
            }
        }
    }

    fn epoch_seconds(&self, e: &str) -> String {
        format!("floor(extract(epoch from {e}))::bigint")
    }

    /// From the epoch, so a timestamptz is read in UTC whatever the
    /// session's time zone.
    fn month_index(&self, e: &str) -> String {
        let utc = format!(
            "(to_timestamp({}) AT TIME ZONE 'UTC')",
            self.epoch_seconds(e)
        );
        format!(
            "(extract(year from {utc})::bigint * 12 + extract(month from {utc})::bigint - 23641)"
        )
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

    /// `sum` of bigints is an exact numeric: brought back into 64 bits as
    /// two's complement wraps it (m = s mod 2^64 keeps the sign of s, so
    /// 2^64 + 2^63 is added before the second mod, and 2^63 taken off).
    fn wrapping_sum(&self, e: &str) -> Option<String> {
        Some(format!(
            "CAST(mod(mod(sum({e}), 18446744073709551616) + 27670116110564327424, 18446744073709551616) - 9223372036854775808 AS bigint)"
        ))
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
