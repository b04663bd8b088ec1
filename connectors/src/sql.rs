//! SQL text shared by the ANSI-quoting dialects (PostgreSQL, SQLite).
//! Identifiers are always quoted; values are always bound as parameters.
//! Filters and join conditions are the planner's parsed expressions,
//! printed here from their parse, never pasted from the pipeline's text.

use planner::model::{quote_ident, MappedColumn, TableRef};
use planner::partition::{
    DimRange, Partition, PartitionDimension, PartitionDimensionRef, PartitionValue,
};

use crate::traits::Buckets;

/// How a dialect writes the n-th (1-based) bind parameter.
pub type Placeholder = fn(usize) -> String;

pub fn pg_placeholder(n: usize) -> String {
    format!("${n}")
}

pub fn sqlite_placeholder(n: usize) -> String {
    format!("?{n}")
}

/// What differs in the SQL SyncHub writes for one database: the first
/// seam of the per-dialect rendering the model will go through.
pub trait Dialect: Sync {
    /// The n-th (1-based) bind parameter.
    fn placeholder(&self) -> Placeholder;

    /// `key` is one of the integer keys bound, all together, as parameter `n`.
    fn integer_key_in(&self, key: &str, n: usize) -> String;
}

pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn placeholder(&self) -> Placeholder {
        pg_placeholder
    }

    /// The keys bound as one array.
    fn integer_key_in(&self, key: &str, n: usize) -> String {
        format!("{key} = ANY(${n}::bigint[])")
    }
}

pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn placeholder(&self) -> Placeholder {
        sqlite_placeholder
    }

    /// The keys bound as one JSON array.
    fn integer_key_in(&self, key: &str, n: usize) -> String {
        format!("{key} IN (SELECT value FROM json_each(?{n}))")
    }
}

/// `"schema"."table" AS "alias"`.
pub fn table_sql(schema: Option<&str>, table: &str, alias: Option<&str>) -> String {
    let mut s = match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => quote_ident(table),
    };
    if let Some(a) = alias {
        s.push_str(" AS ");
        s.push_str(&quote_ident(a));
    }
    s
}

/// `FROM ... JOIN ...` of a source.
pub fn from_sql(source: &TableRef) -> String {
    let mut s = format!(
        "FROM {}",
        table_sql(
            source.schema.as_deref(),
            &source.table,
            source.alias.as_deref()
        )
    );
    for j in &source.joins {
        let schema = j.schema.as_deref().or(source.schema.as_deref());
        s.push_str(&format!(
            " {} JOIN {} ON {}",
            j.kind,
            table_sql(schema, &j.table, j.alias.as_deref()),
            j.on
        ));
    }
    s
}

/// The source's filters plus the partition's ranges, with their bind values.
/// Each filter is one parsed expression (no bind parameters), so the
/// parentheses around it hold all of it.
pub fn where_sql(
    source: &TableRef,
    partition: Option<&Partition>,
    placeholder: Placeholder,
    params: &mut Vec<PartitionValue>,
) -> String {
    let mut conds: Vec<String> = source.filters.iter().map(|f| format!("({f})")).collect();
    if let Some(p) = partition {
        conds.extend(range_conditions(
            p,
            |dim| dim.source_expr.clone(),
            placeholder,
            params,
        ));
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// The ranges of `partition` as conditions on the destination table's own
/// columns (`<alias>."<name>"`: a hash partition's dimensions are mapped
/// columns, named as in the destination), bounds pushed onto `params` and
/// written by `placeholder(params.len())`.
pub fn destination_range_conditions(
    partition: &Partition,
    alias: &str,
    placeholder: impl Fn(usize) -> String,
    params: &mut Vec<PartitionValue>,
) -> Vec<String> {
    range_conditions(
        partition,
        |dim| format!("{alias}.{}", quote_ident(&dim.name)),
        placeholder,
        params,
    )
}

fn range_conditions(
    partition: &Partition,
    column: impl Fn(&PartitionDimensionRef) -> String,
    placeholder: impl Fn(usize) -> String,
    params: &mut Vec<PartitionValue>,
) -> Vec<String> {
    let mut conds = Vec::new();
    for (dim, range) in &partition.ranges {
        let e = column(dim);
        match range {
            DimRange::Range { start, end } => {
                params.push(*start);
                let a = placeholder(params.len());
                params.push(*end);
                let b = placeholder(params.len());
                conds.push(format!("{e} >= {a} AND {e} < {b}"));
            }
            DimRange::Null => conds.push(format!("{e} IS NULL")),
            DimRange::All => {}
        }
    }
    conds
}

/// The column expression that `buckets` cuts: one of `partition`'s integer
/// ranges. `None` for a datetime range, an `IS NULL` range or no range.
/// When `Some`, `where_sql` of the partition has a `WHERE` to add to.
pub fn bucket_column(partition: &Partition, buckets: Buckets) -> Option<&str> {
    match partition.ranges.get(buckets.dim) {
        Some((
            dim,
            DimRange::Range {
                start: PartitionValue::Int(_),
                ..
            },
        )) if buckets.width >= 1 => Some(&dim.source_expr),
        _ => None,
    }
}

/// The SQL expression of a row's bucket, from the dimension's column
/// expression (cast to the dialect's 64-bit integer) and the placeholders of
/// `origin` and `width`: integer division of a non-negative difference, so
/// it is the floor.
pub fn bucket_expr(column: &str, origin: &str, width: &str) -> String {
    format!("((({column}) - {origin}) / {width})")
}

/// Row hashes by bucket asked of a partition `bucket_column` has no range for.
pub fn not_bucketed(partition: &Partition) -> crate::ConnectorError {
    crate::ConnectorError::Other(format!("no integer range to bucket in {}", partition.id))
}

/// `SELECT <mapped columns> FROM ... WHERE ...` for one partition.
pub fn select_partition_sql(
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
    placeholder: Placeholder,
) -> (String, Vec<PartitionValue>) {
    let mut params = Vec::new();
    let cols = columns
        .iter()
        .map(|c| c.source_sql.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {cols} {}{}",
        from_sql(source),
        where_sql(source, Some(partition), placeholder, &mut params)
    );
    (sql, params)
}

/// A select by key: its SQL, the partition's bound values, and the keys to
/// bind after them.
pub struct KeySelect {
    pub sql: String,
    pub params: Vec<PartitionValue>,
    pub keys: Vec<i64>,
}

/// A source's `read_keys` for one integer key column: the partition's
/// select narrowed to the keys of `keys` (the change set's key batch),
/// bound as one parameter after the partition's. `None` when the key is
/// composite or not an integer: the source then reads the partition and
/// the caller filters.
pub fn select_by_integer_key(
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
    dialect: &dyn Dialect,
    keys: &arrow::record_batch::RecordBatch,
) -> crate::Result<Option<KeySelect>> {
    let placeholder = dialect.placeholder();
    let mut key_columns = columns.iter().filter(|c| c.unique);
    let (Some(key), None) = (key_columns.next(), key_columns.next()) else {
        return Ok(None);
    };
    if key.spec.data_type.partitionable() != Some(planner::types::PartitionKind::Integer)
        || keys.num_columns() != 1
    {
        return Ok(None);
    }
    let values = arrow::compute::cast(keys.column(0), &arrow::datatypes::DataType::Int64)?;
    let values = values
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .map(|a| a.iter().flatten().collect())
        .unwrap_or_default();
    let (q, params) = select_partition_sql(source, columns, partition, placeholder);
    let has_where = !source.filters.is_empty()
        || partition
            .ranges
            .iter()
            .any(|(_, r)| !matches!(r, DimRange::All));
    let condition = dialect.integer_key_in(&key.source_sql, params.len() + 1);
    let q = if has_where {
        format!("{q} AND {condition}")
    } else {
        format!("{q} WHERE {condition}")
    };
    Ok(Some(KeySelect {
        sql: q,
        params,
        keys: values,
    }))
}

/// One query returning min, max and whether any row has NULL, for every
/// dimension, each its own sub-query: with an index on the column, a lone
/// `min(e)` or `max(e)` is one index probe in both PostgreSQL and SQLite,
/// while SQLite answers `min(e), max(e)` together by reading every row (and
/// the NULL test is an `EXISTS` rather than `count(*) - count(e)` for the
/// same reason).
pub fn bounds_sql(
    source: &TableRef,
    dims: &[PartitionDimension],
    placeholder: Placeholder,
) -> String {
    let mut params = Vec::new();
    let from = from_sql(source);
    let filters = where_sql(source, None, placeholder, &mut params);
    let and = if filters.is_empty() { " WHERE" } else { " AND" };
    let cols = dims
        .iter()
        .map(|d| {
            let e = &d.source_expr;
            format!(
                "(SELECT min({e}) {from}{filters}), (SELECT max({e}) {from}{filters}), \
                 EXISTS (SELECT 1 {from}{filters}{and} {e} IS NULL)"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {cols}")
}

/// `SELECT <mapped columns> ... WHERE false`: checks every column resolves.
pub fn probe_sql(source: &TableRef, columns: &[MappedColumn]) -> String {
    let cols = columns
        .iter()
        .map(|c| c.source_sql.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {cols} {} LIMIT 0", from_sql(source))
}
