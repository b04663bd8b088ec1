//! Declared types: SQLite's affinity rules and which existing declared types
//! keep a configured type's values (the type SyncHub declares is the
//! dialect's, `sql::SqliteDialect::type_ddl`).

use planner::types::ColumnType;

// ---------------------------------------------------------------------------
// Affinity
// ---------------------------------------------------------------------------

/// A column's type affinity, which decides how SQLite converts stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    /// Also "none": values are stored as given.
    Blob,
    Real,
    Numeric,
}

/// The affinity SQLite derives from a declared column type (rules of
/// <https://sqlite.org/datatype3.html#determination_of_column_affinity>, in
/// their order, so `POINT` is INTEGER and `DATETIME` is NUMERIC).
pub fn sqlite_affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// Whether values written by [`ColumnEncoder`] into an existing column with
/// this declared type are stored unchanged, and so read back equal.
///
/// Affinity only ever converts TEXT that looks like a number, numbers, or
/// (REAL affinity) integers; BLOBs are never converted. Hence:
/// - decimals and strings need TEXT or BLOB affinity: NUMERIC, INTEGER or REAL
///   would turn `"12.50"` or `"007"` into a number;
/// - date/time/timestamp/UUID text never looks like a number, so NUMERIC
///   affinity (the affinity of the common `DATETIME`, `DATE`, `UUID`
///   declarations) keeps it too; INTEGER/REAL are refused because such columns
///   usually hold epoch numbers, and mixing them with text breaks ordering;
/// - integers and booleans need INTEGER, NUMERIC or BLOB affinity;
/// - floats also accept INTEGER and NUMERIC affinity, which store integral
///   floats as integers that read back as the same floats;
/// - binary fits any affinity.
///
/// [`ColumnEncoder`]: super::ColumnEncoder
pub fn sqlite_type_compatible(config: &ColumnType, declared: &str) -> bool {
    use Affinity::*;
    let affinity = sqlite_affinity(declared);
    match config {
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 | ColumnType::Bool => {
            matches!(affinity, Integer | Numeric | Blob)
        }
        ColumnType::Float32 | ColumnType::Float64 => {
            matches!(affinity, Real | Integer | Numeric | Blob)
        }
        ColumnType::Decimal { .. }
        | ColumnType::String { .. }
        | ColumnType::Text
        | ColumnType::Json => {
            matches!(affinity, Text | Blob)
        }
        ColumnType::Date
        | ColumnType::Time
        | ColumnType::Timestamp
        | ColumnType::TimestampTz
        | ColumnType::Uuid => matches!(affinity, Text | Numeric | Blob),
        ColumnType::Binary => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::codec::tests::DEC38;

    #[test]
    fn affinity_rules() {
        use Affinity::*;
        for (decl, want) in [
            ("INTEGER", Integer),
            ("unsigned big int", Integer),
            ("POINT", Integer),
            ("VARCHAR(255)", Text),
            ("nchar(5)", Text),
            ("CLOB", Text),
            ("BLOB", Blob),
            ("", Blob),
            ("  ", Blob),
            ("REAL", Real),
            ("double precision", Real),
            ("FLOAT", Real),
            ("NUMERIC", Numeric),
            ("DECIMAL(10,5)", Numeric),
            ("DATETIME", Numeric),
            ("BOOLEAN", Numeric),
            // INT wins over CHAR, as in SQLite.
            ("CHARINT", Integer),
        ] {
            assert_eq!(sqlite_affinity(decl), want, "{decl}");
        }
        assert!(sqlite_type_compatible(&ColumnType::Timestamp, "DATETIME"));
        assert!(sqlite_type_compatible(&ColumnType::Binary, "INTEGER"));
        assert!(sqlite_type_compatible(&DEC38, "TEXT"));
        assert!(sqlite_type_compatible(&DEC38, ""));
    }
}
