//! Filters and join conditions: each parsed as one SQL expression and
//! rendered back from the parse, so what a pipeline writes cannot reach
//! outside the parentheses it is put in (`id < 10) OR (true`), end the
//! statement (`1=1; DROP TABLE x`) or read SyncHub's bind parameters.

use std::fmt;
use std::ops::ControlFlow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlparser::ast::{Expr, Value, Visit, Visitor};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::datastores::Datastore;

/// How deep a condition's expression tree may nest. A chain of `AND`s or
/// `+`s nests one level per operator (sqlparser builds it in a loop, not
/// under its recursion limit), and cloning, comparing or printing the tree
/// recurses once per level: about 400 levels overflow a 2 MiB thread stack
/// in a debug build. 100 is 100 ANDed comparisons in one filter.
pub const MAX_EXPR_DEPTH: usize = 100;

/// Names, keywords, operators and parentheses in one condition (values and
/// commas are free, so a long `IN (...)` list is not). Checked on the tokens,
/// before the tree is built: a tree of thousands of levels overflows the
/// stack just being dropped (50,000 levels do on a 2 MiB stack).
pub const MAX_CONDITION_TOKENS: usize = 1_000;

/// The SQL a datastore speaks. Both quote identifiers in ANSI double quotes
/// and strings in single quotes, doubled inside, which is how a parsed
/// expression prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    Postgres,
    Sqlite,
}

impl SqlDialect {
    pub fn of(datastore: &Datastore) -> SqlDialect {
        datastore.connection.sql_dialect()
    }

    fn parser_dialect(self) -> &'static dyn Dialect {
        match self {
            SqlDialect::Postgres => &PostgreSqlDialect {},
            SqlDialect::Sqlite => &SQLiteDialect {},
        }
    }
}

/// One SQL expression, as parsed. Prints (and serializes) as SQL: quoted
/// identifiers keep their quotes, strings are re-quoted, comments are gone.
/// A connector writes it in its own dialect from the tree (`expr`), not
/// from this text.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlExpr(Expr);

impl SqlExpr {
    /// Parses `text` as exactly one expression of `dialect`; the error is
    /// the parser's reason, with its line and column inside `text`.
    pub fn parse(text: &str, dialect: SqlDialect) -> Result<SqlExpr, String> {
        let reason = |e: ParserError| {
            let message = e.to_string();
            match message.strip_prefix("sql parser error: ") {
                Some(m) => m.to_string(),
                None => message,
            }
        };
        let dialect = dialect.parser_dialect();
        let tokens = Tokenizer::new(dialect, text)
            .tokenize_with_location()
            .map_err(|e| e.to_string())?;
        let counted = tokens
            .iter()
            .filter(|t| !is_value_or_space(&t.token))
            .count();
        if counted > MAX_CONDITION_TOKENS {
            return Err(format!(
                "the condition has more than {MAX_CONDITION_TOKENS} names, keywords and operators; write it shorter or split it into several filters, which are ANDed"
            ));
        }
        let mut parser = Parser::new(dialect).with_tokens_with_locations(tokens);
        let expr = parser.parse_expr().map_err(reason)?;
        // `parse_expr` stops at the first token that cannot continue the
        // expression; whatever is left (`)`, `;`, a second statement) is
        // what would have escaped.
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(reason(
                parser
                    .expected::<()>("end of the condition", next)
                    .unwrap_err(),
            ));
        }
        let mut check = Check::default();
        if let ControlFlow::Break(message) = expr.visit(&mut check) {
            return Err(message);
        }
        Ok(SqlExpr(expr))
    }

    pub fn expr(&self) -> &Expr {
        &self.0
    }

    /// Whether this is a column and nothing else.
    pub fn is_column(&self) -> bool {
        matches!(self.0, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
    }

    /// The column `c` when this is `CAST(c AS DATE)` (or `c::date`): its
    /// rows of one day are a range of `c`, which an index on `c` finds.
    pub fn date_of_column(&self) -> Option<SqlExpr> {
        match &self.0 {
            Expr::Cast {
                expr,
                data_type: sqlparser::ast::DataType::Date,
                format: None,
                ..
            } if matches!(**expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => {
                Some(SqlExpr((**expr).clone()))
            }
            _ => None,
        }
    }

    /// The expression that prints as `text` (what it serializes as): parsed
    /// by the first dialect whose parse prints `text` back unchanged, so a
    /// pipeline shipped as text to another process renders the same SQL.
    pub fn from_canonical(text: &str) -> Result<SqlExpr, String> {
        let mut first_error = None;
        for dialect in [SqlDialect::Postgres, SqlDialect::Sqlite] {
            match SqlExpr::parse(text, dialect) {
                Ok(e) if e.to_string() == text => return Ok(e),
                Ok(e) => {
                    first_error.get_or_insert(format!("it reads back as {e}"));
                }
                Err(why) => {
                    first_error.get_or_insert(why);
                }
            }
        }
        Err(format!(
            "\"{text}\" is not a condition SyncHub printed: {}",
            first_error.unwrap_or_default()
        ))
    }
}

impl fmt::Display for SqlExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for SqlExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SqlExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SqlExpr, D::Error> {
        let text = String::deserialize(d)?;
        SqlExpr::from_canonical(&text).map_err(serde::de::Error::custom)
    }
}

fn is_value_or_space(token: &Token) -> bool {
    matches!(
        token,
        Token::Whitespace(_)
            | Token::Comma
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
    )
}

/// Walks a parsed expression: its depth, and no bind parameters.
#[derive(Default)]
struct Check {
    depth: usize,
}

impl Visitor for Check {
    type Break = String;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        // Breaking here stops the walk, so the walk itself never goes
        // deeper than the limit.
        if self.depth > MAX_EXPR_DEPTH {
            return ControlFlow::Break(format!(
                "the condition nests more than {MAX_EXPR_DEPTH} levels deep; write it shorter (x IN (1, 2, 3) rather than x = 1 OR x = 2 OR x = 3) or split it into several filters, which are ANDed"
            ));
        }
        if let Expr::Value(v) = expr {
            if let Value::Placeholder(p) = &v.value {
                return ControlFlow::Break(format!(
                    "{p} is a bind parameter; SyncHub binds its own partition bounds, so write the value itself"
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(text: &str) -> Result<String, String> {
        SqlExpr::parse(text, SqlDialect::Postgres).map(|e| e.to_string())
    }

    fn lite(text: &str) -> Result<String, String> {
        SqlExpr::parse(text, SqlDialect::Sqlite).map(|e| e.to_string())
    }

    #[test]
    fn conditions_print_back_as_written() {
        for (text, printed) in [
            ("o.status = 'active'", "o.status = 'active'"),
            (
                r#""Order Id" > 10 AND o."Ship.Date" IS NOT NULL"#,
                r#""Order Id" > 10 AND o."Ship.Date" IS NOT NULL"#,
            ),
            (
                r#""say ""hi""" = 'it''s (x)'"#,
                r#""say ""hi""" = 'it''s (x)'"#,
            ),
            ("x IN (SELECT id FROM t)", "x IN (SELECT id FROM t)"),
            ("id < 10 -- a comment", "id < 10"),
            ("id < 10 /* ) OR (true */", "id < 10"),
            ("id BETWEEN 1 AND 10", "id BETWEEN 1 AND 10"),
        ] {
            assert_eq!(pg(text).as_deref(), Ok(printed), "{text}");
            assert_eq!(lite(text).as_deref(), Ok(printed), "{text}");
        }
    }

    #[test]
    fn conditions_round_trip_through_their_text() {
        for (text, dialect) in [
            (
                r#"o."Order Id" > 10 AND o.status IN ('a', 'it''s')"#,
                SqlDialect::Postgres,
            ),
            ("x::bigint = 1", SqlDialect::Postgres),
            ("`a b` = 1 AND x IS NOT NULL", SqlDialect::Sqlite),
        ] {
            let e = SqlExpr::parse(text, dialect).unwrap();
            let json = serde_json::to_string(&e).unwrap();
            let back: SqlExpr = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e, "{text}");
            assert_eq!(back.to_string(), e.to_string());
        }
        let bad = serde_json::from_str::<SqlExpr>(r#""id < 10) OR (true""#).unwrap_err();
        assert!(
            bad.to_string().starts_with(
                "\"id < 10) OR (true\" is not a condition SyncHub printed: Expected: end of the condition"
            ),
            "{bad}"
        );
    }

    #[test]
    fn break_outs_are_refused_with_the_parsers_reason() {
        for (text, reason) in [
            (
                "id < 10) OR (true",
                "Expected: end of the condition, found: ) at Line: 1, Column: 8",
            ),
            (
                "1=1; DROP TABLE x",
                "Expected: end of the condition, found: ; at Line: 1, Column: 4",
            ),
            (
                "a = 1 UNION SELECT 1",
                "Expected: end of the condition, found: UNION at Line: 1, Column: 7",
            ),
            ("", "Expected: an expression, found: EOF"),
            (
                "'unterminated",
                "Unterminated string literal at Line: 1, Column: 1",
            ),
        ] {
            assert_eq!(pg(text), Err(reason.to_string()), "{text}");
            assert_eq!(lite(text), Err(reason.to_string()), "{text}");
        }
    }

    #[test]
    fn bind_parameters_are_refused() {
        let message = |p: &str| {
            format!("{p} is a bind parameter; SyncHub binds its own partition bounds, so write the value itself")
        };
        assert_eq!(pg("id > $1"), Err(message("$1")));
        assert_eq!(lite("id > ?1"), Err(message("?1")));
        assert_eq!(lite("f(?) = 1"), Err(message("?")));
    }

    #[test]
    fn depth_is_bounded_and_the_deepest_accepted_tree_is_safe_to_use() {
        // Run on a 2 MiB stack, as a tokio worker does.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let chain = |n: usize| vec!["1"; n].join(" + ");
                let deepest = SqlExpr::parse(&chain(MAX_EXPR_DEPTH), SqlDialect::Postgres)
                    .expect("100 levels");
                let copy = deepest.clone();
                assert_eq!(copy, deepest);
                assert_eq!(copy.to_string(), chain(MAX_EXPR_DEPTH));
                assert!(!format!("{copy:?}").is_empty());
                assert!(pg(&chain(MAX_EXPR_DEPTH + 1))
                    .unwrap_err()
                    .starts_with("the condition nests more than 100 levels deep"));
                // Parenthesised nesting stops at sqlparser's own limit.
                let nested = format!("{}1{}", "(".repeat(60), ")".repeat(60));
                assert_eq!(pg(&nested), Err("recursion limit exceeded".to_string()));
                // A long chain is refused on its tokens, before a tree
                // that deep is built (and dropped).
                assert_eq!(
                    pg(&chain(100_000)),
                    Err("the condition has more than 1000 names, keywords and operators; write it shorter or split it into several filters, which are ANDed".to_string())
                );
                // Values are not counted: a long IN list is fine.
                let list = (0..5000).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
                assert!(pg(&format!("id IN ({list})")).is_ok());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
