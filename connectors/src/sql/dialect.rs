//! What differs in the SQL SyncHub writes for one database, and the parts
//! every dialect renders the same way from those differences.

use planner::model::MappedColumn;
use planner::types::{ColumnSpec, ColumnType};
use planner::{ColumnRef, SqlExpr};

/// One database's SQL. The required methods are what differs; the provided
/// ones build names, column lists and expressions from them.
pub trait Dialect: Sync {
    /// The character identifiers are quoted in (`"`, or MySQL's backtick);
    /// the character inside a name is written twice.
    fn identifier_quote(&self) -> char;

    /// The n-th (1-based) bind parameter.
    fn placeholder(&self, n: usize) -> String;

    /// The n-th bind parameter, read as a 64-bit integer.
    fn bigint_placeholder(&self, n: usize) -> String;

    /// The SQL expression `e` as a 64-bit integer.
    fn bigint(&self, e: &str) -> String;

    /// The row's key (`keys`: each key column's SQL and how its values
    /// are bound) is one of the keys bound from parameter `n` on, as this
    /// dialect's sources bind a `Select`'s keys.
    fn keys_in(&self, keys: &[(String, super::KeyKind)], n: usize) -> String;

    /// `SELECT ...` of listed keys bound from the `n`-th parameter as
    /// `keys_in` binds them, one column per key named `names[i]`, each cast
    /// to the type a column of `keys[i].1` is created with.
    fn listed_keys(
        &self,
        keys: &[(super::KeyKind, ColumnType)],
        names: &[String],
        n: usize,
    ) -> String;

    /// Whether a read re-computing listed groups matches rows to them with
    /// `(keys) IN (listed)` beside the window's `EXISTS`, rather than
    /// `UNION`ing them into the window's keys.
    fn listed_keys_by_in(&self) -> bool {
        false
    }

    /// Whole seconds since the Unix epoch of the date/time expression `e`,
    /// as a 64-bit integer: UTC for a time zone aware value, the wall clock
    /// as if UTC otherwise (a date at its midnight). Rounded down.
    fn epoch_seconds(&self, e: &str) -> String;

    /// Months since January 1970 of the date/time expression `e` (of its
    /// UTC date, or the wall clock's as `epoch_seconds`), as a 64-bit
    /// integer: 2024-03 is 650.
    fn month_index(&self, e: &str) -> String;

    /// The type a destination column of `ty` is created with.
    fn type_ddl(&self, ty: &ColumnType) -> String;

    /// What a source selects for a column holding the row hash, of type
    /// `ty`: a typed NULL, replaced by the hash once the row is decoded.
    fn computed_hash(&self, ty: &ColumnType) -> String;

    /// The 64-bit integer `a` divided by `b`, truncated (`/` in SQL that
    /// divides integers as integers).
    fn int_divide(&self, a: &str, b: &str) -> String {
        format!("{a} / {b}")
    }

    /// `name` quoted.
    fn quote_ident(&self, name: &str) -> String {
        let q = self.identifier_quote();
        let mut s = String::with_capacity(name.len() + 2);
        s.push(q);
        for c in name.chars() {
            if c == q {
                s.push(q);
            }
            s.push(c);
        }
        s.push(q);
        s
    }

    /// `"schema"."table"`, or `"table"`.
    fn table(&self, schema: Option<&str>, table: &str) -> String {
        match schema {
            Some(schema) => format!("{}.{}", self.quote_ident(schema), self.quote_ident(table)),
            None => self.quote_ident(table),
        }
    }

    /// `"schema"."table" AS "alias"`.
    fn table_as(&self, schema: Option<&str>, table: &str, alias: Option<&str>) -> String {
        let mut s = self.table(schema, table);
        if let Some(a) = alias {
            s.push_str(" AS ");
            s.push_str(&self.quote_ident(a));
        }
        s
    }

    /// `"o"."id"`, or `"id"`.
    fn column(&self, c: &ColumnRef) -> String {
        match &c.table {
            Some(t) => format!("{}.{}", self.quote_ident(t), self.quote_ident(&c.column)),
            None => self.quote_ident(&c.column),
        }
    }

    /// What a source selects for a mapped column: its source column, or
    /// for a computed row hash, [`Dialect::computed_hash`].
    fn mapped_column(&self, c: &MappedColumn) -> String {
        if c.stored_hash.is_compute() {
            self.computed_hash(&c.spec.data_type)
        } else if let Some(e) = &c.expr {
            format!("({})", self.aggregate_expr(e))
        } else {
            self.column(&c.source_ref)
        }
    }

    /// The destination columns, quoted and comma-separated.
    fn column_list(&self, specs: &[ColumnSpec]) -> String {
        let names: Vec<String> = specs.iter().map(|c| self.quote_ident(&c.name)).collect();
        names.join(", ")
    }

    /// The key (unique) columns, quoted and comma-separated.
    fn key_list(&self, specs: &[ColumnSpec]) -> String {
        let keys: Vec<String> = specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| self.quote_ident(&c.name))
            .collect();
        keys.join(", ")
    }

    /// `a."k1" = b."k1" AND a."k2" = b."k2"` over the key columns: the rows
    /// of `a` and `b` (table aliases, written as given) with the same key.
    fn keys_equal(&self, a: &str, b: &str, specs: &[ColumnSpec]) -> String {
        let conds: Vec<String> = specs
            .iter()
            .filter(|c| c.unique)
            .map(|c| format!("{a}.{k} = {b}.{k}", k = self.quote_ident(&c.name)))
            .collect();
        conds.join(" AND ")
    }

    /// A parsed filter or join condition, every quoted identifier in it
    /// re-quoted in this dialect's quote (unquoted ones stay unquoted: the
    /// database folds their case as it would have).
    fn expr(&self, e: &SqlExpr) -> String {
        super::expr::requoted(e, self.identifier_quote())
    }

    /// The day after the date expression `e`.
    fn next_day(&self, e: &str) -> String {
        format!("({e} + 1)")
    }

    /// A re-computed group's column `e` as a destination column of `ty`
    /// reads it: cast to the type it is created with, so the database
    /// rounds a decimal to its scale and refuses a count past its range.
    fn group_value(&self, e: &str, ty: &ColumnType) -> String {
        format!("CAST({e} AS {})", self.type_ddl(ty))
    }

    /// The sum of the 64-bit integers `e` over a group, wrapping at 2^64 as
    /// [`crate::Checksum`] adds row hashes; `None` where this database has
    /// no SQL for SyncHub's row hash to sum.
    fn wrapping_sum(&self, _e: &str) -> Option<String> {
        None
    }

    /// An aggregate's key or value expression, as [`Dialect::expr`] writes
    /// it, with what this database spells otherwise rewritten.
    fn aggregate_expr(&self, e: &SqlExpr) -> String {
        self.expr(e)
    }
}
