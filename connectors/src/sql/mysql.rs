//! MySQL's and MariaDB's SQL: backtick quotes, named `:pN` placeholders
//! (the driver turns them into `?` and binds a value again wherever its
//! name repeats, as `bounds_sql` reuses a partition's values), JSON arrays
//! read through `JSON_TABLE` for key lists.

use planner::types::ColumnType;

use super::{Dialect, KeyKind};

pub struct MySqlDialect;

/// What the connector's tables and key lists compare text in: bytewise, so
/// keys that differ only in case or accents stay two keys.
pub const MYSQL_COLLATION: &str = "utf8mb4_bin";

impl Dialect for MySqlDialect {
    fn identifier_quote(&self) -> char {
        '`'
    }

    fn placeholder(&self, n: usize) -> String {
        format!(":p{n}")
    }

    fn bigint_placeholder(&self, n: usize) -> String {
        format!("CAST({} AS SIGNED)", self.placeholder(n))
    }

    fn bigint(&self, e: &str) -> String {
        format!("CAST({e} AS SIGNED)")
    }

    /// The keys bound as one JSON array (of values, or of one array per
    /// key) and read back as rows by `JSON_TABLE`.
    fn listed_keys(&self, keys: &[(KeyKind, ColumnType)], names: &[String], n: usize) -> String {
        let paths: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (kind, ty))| {
                let path = if keys.len() == 1 {
                    "$".to_string()
                } else {
                    format!("$[{i}]")
                };
                let ty = match (kind, ty) {
                    (KeyKind::Text, ColumnType::String { .. } | ColumnType::Text) => {
                        format!("VARCHAR(16000) CHARACTER SET utf8mb4 COLLATE {MYSQL_COLLATION}")
                    }
                    _ => self.type_ddl(ty),
                };
                format!("k{i} {ty} PATH '{path}'")
            })
            .collect();
        let items: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| format!("j.k{i} AS {}", self.quote_ident(name)))
            .collect();
        format!(
            "SELECT {} FROM JSON_TABLE({}, '$[*]' COLUMNS ({})) AS j",
            items.join(", "),
            self.placeholder(n),
            paths.join(", ")
        )
    }

    fn keys_in(&self, keys: &[(String, KeyKind)], n: usize) -> String {
        let column_type = |kind: &KeyKind| match kind {
            KeyKind::Int => "BIGINT".to_string(),
            KeyKind::Text => {
                format!("VARCHAR(16000) CHARACTER SET utf8mb4 COLLATE {MYSQL_COLLATION}")
            }
        };
        let (columns, paths): (Vec<&str>, Vec<String>) = match keys {
            [(key, kind)] => (
                vec![key.as_str()],
                vec![format!("k0 {} PATH '$'", column_type(kind))],
            ),
            _ => keys
                .iter()
                .enumerate()
                .map(|(i, (key, kind))| {
                    (
                        key.as_str(),
                        format!("k{i} {} PATH '$[{i}]'", column_type(kind)),
                    )
                })
                .unzip(),
        };
        let selected: Vec<String> = (0..columns.len()).map(|i| format!("j.k{i}")).collect();
        format!(
            "({}) IN (SELECT {} FROM JSON_TABLE({}, '$[*]' COLUMNS ({})) AS j)",
            columns.join(", "),
            selected.join(", "),
            self.placeholder(n),
            paths.join(", ")
        )
    }

    /// `/` gives a decimal in MySQL.
    fn int_divide(&self, a: &str, b: &str) -> String {
        format!("{a} DIV {b}")
    }

    /// Date/times are stored as the wall clock (UTC for timestamptz):
    /// microseconds since the epoch, floored to seconds (not truncated
    /// toward zero, which is what `TIMESTAMPDIFF(SECOND, ...)` would do
    /// before 1970), free of the session's time zone unlike
    /// `UNIX_TIMESTAMP`.
    fn epoch_seconds(&self, e: &str) -> String {
        format!(
            "CAST(FLOOR(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {e}) / 1000000) AS SIGNED)"
        )
    }

    fn month_index(&self, e: &str) -> String {
        format!("(YEAR({e}) * 12 + MONTH({e}) - 23641)")
    }

    /// As computed: MySQL's CAST takes a few type names only (SIGNED,
    /// DECIMAL, CHAR...), not the ones its columns are created with.
    fn group_value(&self, e: &str, _ty: &ColumnType) -> String {
        e.to_string()
    }

    fn next_day(&self, e: &str) -> String {
        format!("({e} + INTERVAL 1 DAY)")
    }

    fn type_ddl(&self, t: &ColumnType) -> String {
        match t {
            ColumnType::Int16 => "SMALLINT".into(),
            ColumnType::Int32 => "INT".into(),
            ColumnType::Int64 => "BIGINT".into(),
            ColumnType::Float32 => "FLOAT".into(),
            ColumnType::Float64 => "DOUBLE".into(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
            ColumnType::Bool => "BOOLEAN".into(),
            ColumnType::String { max_len: Some(n) } => format!("VARCHAR({n})"),
            // JSON as text: MySQL's JSON type rewrites the text it is given
            // (key order, spacing), so values would not read back equal.
            ColumnType::String { max_len: None } | ColumnType::Text | ColumnType::Json => {
                "LONGTEXT".into()
            }
            ColumnType::Binary => "LONGBLOB".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME(6)".into(),
            // DATETIME, not TIMESTAMP: no session time zone conversion and
            // years 1000-9999; timestamptz values are stored as UTC.
            ColumnType::Timestamp | ColumnType::TimestampTz => "DATETIME(6)".into(),
            ColumnType::Uuid => "CHAR(36)".into(),
        }
    }

    fn computed_hash(&self, ty: &ColumnType) -> String {
        if *ty == ColumnType::Int64 {
            "CAST(NULL AS SIGNED)".into()
        } else {
            "CAST(NULL AS CHAR)".into()
        }
    }
}
