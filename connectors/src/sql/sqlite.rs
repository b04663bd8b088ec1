//! SQLite's SQL: `?n` placeholders, JSON arrays for lists, its storage
//! classes as type names.

use planner::types::ColumnType;

use super::{Dialect, KeyKind};

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

    /// The keys bound as one JSON array: of values for one key column, of
    /// arrays (one element per key column) for several.
    /// Values keep the affinity JSON gives them: integers, and text the
    /// way SyncHub stores dates and the rest.
    fn listed_keys(&self, keys: &[(KeyKind, ColumnType)], names: &[String], n: usize) -> String {
        let items: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = if keys.len() == 1 {
                    "value".to_string()
                } else {
                    format!("json_extract(value, '$[{i}]')")
                };
                format!("{value} AS {}", self.quote_ident(name))
            })
            .collect();
        format!("SELECT {} FROM json_each(?{n})", items.join(", "))
    }

    /// SQLite indexes the window's distinct keys automatically, but not a
    /// `UNION` of them with the listed ones: each row would run it again.
    fn listed_keys_by_in(&self) -> bool {
        true
    }

    fn keys_in(&self, keys: &[(String, KeyKind)], n: usize) -> String {
        match keys {
            [(key, _)] => format!("{key} IN (SELECT value FROM json_each(?{n}))"),
            _ => {
                let columns: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                let elements: Vec<String> = (0..keys.len())
                    .map(|i| format!("json_extract(value, '$[{i}]')"))
                    .collect();
                format!(
                    "({}) IN (SELECT {} FROM json_each(?{n}))",
                    columns.join(", "),
                    elements.join(", ")
                )
            }
        }
    }

    /// Date/times are the canonical text SyncHub stores (UTC for
    /// timestamptz), which `strftime` reads.
    fn epoch_seconds(&self, e: &str) -> String {
        format!("CAST(strftime('%s', {e}) AS INTEGER)")
    }

    fn month_index(&self, e: &str) -> String {
        format!(
            "(CAST(strftime('%Y', {e}) AS INTEGER) * 12 + CAST(strftime('%m', {e}) AS INTEGER) - 23641)"
        )
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

    /// As computed (the codec reads each value by what it is), but for a
    /// decimal: SQLite adds decimal text as floating point (a sum of
    /// 2011.16 comes out as 2011.1599999999999), so it is written as text
    /// rounded to the column's scale, exact while the error stays under
    /// half its last digit.
    fn group_value(&self, e: &str, ty: &ColumnType) -> String {
        match ty {
            ColumnType::Decimal { scale, .. } if *scale >= 0 => {
                format!("CASE WHEN {e} IS NULL THEN NULL ELSE printf('%.{scale}f', {e}) END")
            }
            _ => e.to_string(),
        }
    }

    fn next_day(&self, e: &str) -> String {
        format!("date({e}, '+1 day')")
    }

    fn aggregate_expr(&self, e: &planner::SqlExpr) -> String {
        super::expr::requoted_sqlite_dates(e, self.identifier_quote())
    }

    fn wrapping_sum(&self, e: &str) -> Option<String> {
        Some(format!("{}({e})", crate::rowhash::SQLITE_HASH_SUM_FN))
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
