//! A column as the model holds it: its names, not SQL. Each SQL connector
//! renders it in its own dialect's quoting (`"o"."id"`, `` `o`.`id` ``);
//! a connector without SQL reads the names.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{column_ref_parts, quote_ident};

/// A source column, optionally qualified by the table (its alias or name)
/// it is read from: `o.id` is `{table: o, column: id}`. Names are unquoted,
/// exactly as the database knows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub column: String,
}

impl ColumnRef {
    /// A column not qualified by a table.
    pub fn bare(column: impl Into<String>) -> ColumnRef {
        ColumnRef {
            table: None,
            column: column.into(),
        }
    }

    /// A reference as a pipeline writes it: `id`, `o.id`, and names that
    /// are not plain identifiers in SQL's double quotes (`o."Order Id"`).
    /// `None` when `s` is not one or two such parts.
    pub fn parse(s: &str) -> Option<ColumnRef> {
        let mut parts = column_ref_parts(s)?;
        let column = parts.pop()?;
        Some(ColumnRef {
            table: parts.pop(),
            column,
        })
    }
}

/// In ANSI double quotes (`"o"."id"`), as messages and `synchub plan` show
/// it; never pasted into a query, which each connector's dialect renders.
impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(table) = &self.table {
            write!(f, "{}.", quote_ident(table))?;
        }
        f.write_str(&quote_ident(&self.column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_into_names_and_print_in_ansi_quotes() {
        let r = ColumnRef::parse(r#"o."say ""hi""""#).unwrap();
        assert_eq!(r.table.as_deref(), Some("o"));
        assert_eq!(r.column, r#"say "hi""#);
        assert_eq!(r.to_string(), r#""o"."say ""hi""""#);
        assert_eq!(ColumnRef::parse("id"), Some(ColumnRef::bare("id")));
        assert_eq!(ColumnRef::bare("id").to_string(), "\"id\"");
        assert_eq!(ColumnRef::parse("a.b.c"), None);
    }

    #[test]
    fn references_round_trip_through_serde() {
        let r = ColumnRef::parse(r#"o."Order `Id`""#).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"table":"o","column":"Order `Id`"}"#);
        assert_eq!(serde_json::from_str::<ColumnRef>(&json).unwrap(), r);
        let bare = serde_json::to_string(&ColumnRef::bare("id")).unwrap();
        assert_eq!(bare, r#"{"column":"id"}"#);
        assert_eq!(
            serde_json::from_str::<ColumnRef>(&bare).unwrap(),
            ColumnRef::bare("id")
        );
    }
}
