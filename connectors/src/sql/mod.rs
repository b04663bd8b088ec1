//! The SQL the SQL connectors write, rendered per dialect from the model's
//! structured parts: column references, parsed filters and join
//! conditions, partition ranges. The model holds no SQL text; what differs
//! between databases (quoting, placeholders, casts, type names) is asked of
//! a [`Dialect`]. Identifiers are always quoted; values are always bound.

mod dialect;
mod expr;
mod grouped;
mod mysql;
mod postgres;
mod reader;
mod select;
mod sqlite;
#[cfg(test)]
mod tests;

pub use dialect::Dialect;
pub use grouped::{aggregate_missing_column, reads_touched_groups, ListedGroups};
pub use mysql::{MySqlDialect, MYSQL_COLLATION};
pub use postgres::PostgresDialect;
pub use reader::{Select, SelectFrom, SqlSource};
pub use select::{
    bounds_sql, bucket_column, bucket_expr, buckets_sql, destination_range_conditions,
    destination_scope, from_sql, keys_json, not_bucketed, probe_sql, select_by_keys,
    select_partition_sql, where_sql, KeyKind, KeyValues,
};
pub use sqlite::SqliteDialect;
