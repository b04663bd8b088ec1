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
    DataType, Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableAlias, TableFactor, VisitMut, VisitorMut,
};

/// `e` printed with every quoted identifier in `quote`.
pub(super) fn requoted(e: &SqlExpr, quote: char) -> String {
    let mut tree = e.expr().clone();
    let _ = tree.visit(&mut Requote(quote));
    tree.to_string()
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
