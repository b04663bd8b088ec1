//! A parsed filter or join condition written in one dialect's quoting.
//!
//! The planner parses each condition once, in the source database's
//! dialect; a quoted identifier keeps its quote style in the tree
//! (`"Order Id"`, or SQLite's `` `Order Id` `` and `[Order Id]`). Before it
//! is printed for a database, every quoted identifier takes that
//! database's quote, and printing escapes a quote inside the name by
//! doubling it. Unquoted identifiers stay unquoted: quoting one would change
//! what PostgreSQL folds to lower case.
//!
//! sqlparser's `VisitorMut` reaches expressions, table names, table
//! factors and queries; the identifiers inside them that it does not hand
//! over on their own (aliases, function and type names) are requoted here.

use std::ops::ControlFlow;

use planner::SqlExpr;
use sqlparser::ast::{
    DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    TableAlias, TableFactor, VisitMut, VisitorMut,
};

/// `e` printed with every quoted identifier in `quote`.
pub(super) fn requoted(e: &SqlExpr, quote: char) -> String {
    let mut tree = e.expr().clone();
    let _ = tree.visit(&mut Requote(quote));
    tree.to_string()
}

/// `e` as [`requoted`], each `CAST(x AS DATE)` written `date(x)`: SQLite
/// gives the type name DATE numeric affinity, so its CAST turns the text
/// `2024-01-15 10:00:00` into 2024, while `date()` reads the text SyncHub
/// stores date/times as.
pub(super) fn requoted_sqlite_dates(e: &SqlExpr, quote: char) -> String {
    let mut tree = e.expr().clone();
    let _ = tree.visit(&mut Requote(quote));
    let _ = tree.visit(&mut SqliteDates);
    tree.to_string()
}

struct SqliteDates;

impl VisitorMut for SqliteDates {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Date,
            format: None,
            ..
        } = expr
        {
            let arg = std::mem::replace(inner.as_mut(), Expr::value(sqlparser::ast::Value::Null));
            *expr = Expr::Function(sqlparser::ast::Function {
                name: ObjectName::from(vec![Ident::new("date")]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
                    clauses: Vec::new(),
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: Vec::new(),
            });
        }
        ControlFlow::Continue(())
    }
}

struct Requote(char);

impl Requote {
    fn ident(&self, i: &mut Ident) {
        if i.quote_style.is_some() {
            i.quote_style = Some(self.0);
        }
    }

    fn name(&self, name: &mut ObjectName) {
        for part in &mut name.0 {
            if let ObjectNamePart::Identifier(i) = part {
                self.ident(i);
            }
        }
    }

    fn alias(&self, alias: &mut TableAlias) {
        self.ident(&mut alias.name);
        for c in &mut alias.columns {
            self.ident(&mut c.name);
        }
    }

    fn set_expr(&self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for item in &mut select.projection {
                    match item {
                        SelectItem::ExprWithAlias { alias, .. } => self.ident(alias),
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(name),
                            _,
                        ) => self.name(name),
                        _ => {}
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            // A nested query is visited as a query of its own.
            _ => {}
        }
    }
}

impl VisitorMut for Requote {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(i) => self.ident(i),
            Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(|i| self.ident(i)),
            Expr::QualifiedWildcard(name, _) => self.name(name),
            Expr::Function(f) => self.name(&mut f.name),
            Expr::Cast {
                data_type: DataType::Custom(name, _),
                ..
            } => self.name(name),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        self.name(relation);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. } => alias,
            _ => return ControlFlow::Continue(()),
        };
        if let Some(alias) = alias {
            self.alias(alias);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                self.alias(&mut cte.alias);
            }
        }
        self.set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}
