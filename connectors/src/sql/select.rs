//! The queries a SQL source runs (a partition's select, its bounds, a probe
//! of the columns, a select by key) and the conditions a sink scopes its
//! deletes with, built through a [`Dialect`].

use planner::model::{MappedColumn, TableRef};
use planner::partition::{
    BucketGrid, BucketKey, DimRange, Partition, PartitionDimension, PartitionValue,
};
use planner::ColumnRef;

use super::{Dialect, Select};
use crate::traits::Buckets;

/// `FROM ... JOIN ...` of a source.
pub fn from_sql(d: &dyn Dialect, source: &TableRef) -> String {
    let mut s = format!(
        "FROM {}",
        d.table_as(
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
            d.table_as(schema, &j.table, j.alias.as_deref()),
            d.expr(&j.on)
        ));
    }
    s
}

/// The source's filters plus the partition's ranges, with their bind values.
/// Each filter is one parsed expression (no bind parameters), so the
/// parentheses around it hold all of it.
pub fn where_sql(
    d: &dyn Dialect,
    source: &TableRef,
    partition: Option<&Partition>,
    params: &mut Vec<PartitionValue>,
) -> String {
    let mut conds: Vec<String> = source
        .filters
        .iter()
        .map(|f| format!("({})", d.expr(f)))
        .collect();
    if let Some(p) = partition {
        conds.extend(range_conditions(
            d,
            p,
            |dim| d.column(&dim.column),
            0,
            params,
        ));
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// `partition` with only its ranges on columns the destination has: a
/// delta aggregate's window is a range of a source column (`updated_at`)
/// that scopes nothing at the destination, where the groups its rows left
/// (`track_moves`) may be anywhere.
pub fn destination_scope(
    partition: &Partition,
    columns: &[planner::types::ColumnSpec],
) -> Partition {
    Partition {
        id: partition.id.clone(),
        ranges: partition
            .ranges
            .iter()
            .filter(|(dim, _)| columns.iter().any(|c| c.name == dim.name))
            .cloned()
            .collect(),
    }
}

/// The ranges of `partition` as conditions on the destination table's own
/// columns (`<alias>."<name>"`: a hash partition's dimensions are mapped
/// columns, named as in the destination). Bounds are pushed onto `params`
/// and bound after `bound_before` other parameters.
pub fn destination_range_conditions(
    d: &dyn Dialect,
    partition: &Partition,
    alias: &str,
    bound_before: usize,
    params: &mut Vec<PartitionValue>,
) -> Vec<String> {
    range_conditions(
        d,
        partition,
        |dim| format!("{alias}.{}", d.quote_ident(&dim.name)),
        bound_before,
        params,
    )
}

pub(super) fn range_conditions(
    d: &dyn Dialect,
    partition: &Partition,
    column: impl Fn(&planner::partition::PartitionDimensionRef) -> String,
    bound_before: usize,
    params: &mut Vec<PartitionValue>,
) -> Vec<String> {
    let mut conds = Vec::new();
    for (dim, range) in &partition.ranges {
        let e = column(dim);
        match range {
            DimRange::Range { start, end } => {
                params.push(*start);
                let a = d.placeholder(bound_before + params.len());
                params.push(*end);
                let b = d.placeholder(bound_before + params.len());
                conds.push(format!("{e} >= {a} AND {e} < {b}"));
            }
            DimRange::Null => conds.push(format!("{e} IS NULL")),
            DimRange::All => {}
        }
    }
    conds
}

/// The column that `buckets` cuts: one of `partition`'s integer ranges.
/// `None` for a datetime range, an `IS NULL` range or no range. When
/// `Some`, `where_sql` of the partition has a `WHERE` to add to.
pub fn bucket_column(partition: &Partition, buckets: Buckets) -> Option<&ColumnRef> {
    match partition.ranges.get(buckets.dim) {
        Some((
            dim,
            DimRange::Range {
                start: PartitionValue::Int(_),
                ..
            },
        )) if buckets.width >= 1 => Some(&dim.column),
        _ => None,
    }
}

/// A row's bucket: the column as a 64-bit integer, less the origin bound
/// as parameter `n`, divided by the width bound as `n + 1`. Integer
/// division of a non-negative difference, so it is the floor.
pub fn bucket_expr(d: &dyn Dialect, column: &ColumnRef, n: usize) -> String {
    bucket_of_key(d, &d.bigint(&d.column(column)), n)
}

/// `key` (a 64-bit integer expression) less the origin bound as parameter
/// `n`, divided by the width bound as `n + 1`.
fn bucket_of_key(d: &dyn Dialect, key: &str, n: usize) -> String {
    let offset = format!("(({key}) - {})", d.bigint_placeholder(n));
    format!("({})", d.int_divide(&offset, &d.bigint_placeholder(n + 1)))
}

/// `SELECT <each dimension's bucket under its grid> FROM ... WHERE <the
/// source's filters and the ranges of scope>`, a row per source row: what
/// a SQL source groups to answer `Source::occupied_buckets`, with
/// `count(*)` after the buckets when `counted` (a grouping query's). The
/// scope's range values are pushed onto `params`; each grid's origin and width
/// (none for a `Whole` grid) follow them, as 64-bit integers, returned.
/// Within the span a grid was made for, a key is never below its origin,
/// so integer division is the floor, as in `BucketGrid::bucket_of`.
pub fn buckets_sql(
    d: &dyn Dialect,
    source: &TableRef,
    scope: &Partition,
    dims: &[PartitionDimension],
    grids: &[BucketGrid],
    params: &mut Vec<PartitionValue>,
    counted: bool,
) -> (String, Vec<i64>) {
    let from_where = format!(
        "{}{}",
        from_sql(d, source),
        where_sql(d, source, Some(scope), params)
    );
    let mut grid_params = Vec::new();
    let buckets = dims
        .iter()
        .zip(grids)
        .map(|(dim, grid)| {
            let e = d.column(&dim.column);
            let key = match grid.key {
                BucketKey::Whole => {
                    return d.bigint(&format!("CASE WHEN {e} IS NULL THEN NULL ELSE 0 END"))
                }
                BucketKey::Value => d.bigint(&e),
                BucketKey::EpochSeconds => d.epoch_seconds(&e),
                BucketKey::Month => d.month_index(&e),
            };
            let n = params.len() + grid_params.len() + 1;
            grid_params.extend([grid.origin, grid.width]);
            bucket_of_key(d, &key, n)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let count = if counted { ", count(*)" } else { "" };
    (format!("SELECT {buckets}{count} {from_where}"), grid_params)
}

/// Row hashes by bucket asked of a partition `bucket_column` has no range for.
pub fn not_bucketed(partition: &Partition) -> crate::ConnectorError {
    crate::ConnectorError::Other(format!("no integer range to bucket in {}", partition.id))
}

/// The mapped columns as a source selects them.
pub(super) fn select_list(d: &dyn Dialect, columns: &[MappedColumn]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| d.mapped_column(c)).collect();
    cols.join(", ")
}

/// `SELECT <mapped columns> FROM ... WHERE ...` for one partition.
pub fn select_partition_sql(
    d: &dyn Dialect,
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
) -> (String, Vec<PartitionValue>) {
    if let Some(grouped) = &source.grouped {
        return super::grouped::grouped_select_sql(
            d,
            source,
            grouped,
            columns,
            Some(partition),
            super::grouped::GroupMatch::Window(None),
        );
    }
    let mut params = Vec::new();
    let sql = format!(
        "SELECT {} {}{}",
        select_list(d, columns),
        from_sql(d, source),
        where_sql(d, source, Some(partition), &mut params)
    );
    (sql, params)
}

/// The values of one key column, bound for a select by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValues {
    Ints(Vec<i64>),
    Texts(Vec<String>),
}

impl KeyValues {
    /// The values of a key batch's column as a select binds them: integer
    /// and text keys only, and none of them NULL (a NULL matches no key
    /// condition; the caller then reads the partition and filters).
    fn of(column: &arrow::array::ArrayRef, ty: &planner::types::ColumnType) -> Option<KeyValues> {
        use arrow::array::AsArray;
        use arrow::datatypes::DataType;
        use planner::types::{ColumnType, PartitionKind};
        if column.null_count() > 0 {
            return None;
        }
        if ty.partitionable() == Some(PartitionKind::Integer) {
            let ints = arrow::compute::cast(column, &DataType::Int64).ok()?;
            let ints = ints.as_primitive::<arrow::datatypes::Int64Type>();
            return Some(KeyValues::Ints(ints.values().to_vec()));
        }
        if matches!(ty, ColumnType::String { .. } | ColumnType::Text) {
            let texts = arrow::compute::cast(column, &DataType::Utf8).ok()?;
            let texts = texts.as_string::<i32>();
            return Some(KeyValues::Texts(
                texts
                    .iter()
                    .map(|t| t.unwrap_or_default().to_string())
                    .collect(),
            ));
        }
        None
    }

    /// How many keys: every key column of a select holds as many.
    pub fn len(&self) -> usize {
        match self {
            KeyValues::Ints(v) => v.len(),
            KeyValues::Texts(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> KeyKind {
        match self {
            KeyValues::Ints(_) => KeyKind::Int,
            KeyValues::Texts(_) => KeyKind::Text,
        }
    }

    /// `more`'s values after these (of the same kind; another kind adds
    /// nothing).
    pub fn extend(&mut self, more: &KeyValues) {
        match (self, more) {
            (KeyValues::Ints(a), KeyValues::Ints(b)) => a.extend_from_slice(b),
            (KeyValues::Texts(a), KeyValues::Texts(b)) => a.extend_from_slice(b),
            _ => {}
        }
    }

    /// The values at `positions`.
    pub(super) fn at(&self, positions: &[usize]) -> KeyValues {
        match self {
            KeyValues::Ints(v) => KeyValues::Ints(positions.iter().map(|&i| v[i]).collect()),
            KeyValues::Texts(v) => {
                KeyValues::Texts(positions.iter().map(|&i| v[i].clone()).collect())
            }
        }
    }
}

/// How a key column's values are bound: as 64-bit integers or as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Text,
}

impl KeyKind {
    /// How a key of type `ty` is bound: integers as integers, everything
    /// else as its text.
    pub fn of(ty: &planner::types::ColumnType) -> KeyKind {
        if ty.partitionable() == Some(planner::types::PartitionKind::Integer) {
            KeyKind::Int
        } else {
            KeyKind::Text
        }
    }
}

/// A source's `read_keys`: the partition's select narrowed to the keys of
/// `keys` (the change set's key batch, one column per unique column),
/// bound after the partition's values (`Select::keys`, one list per key
/// column). `None` when a key column is neither an integer nor a string,
/// or a key is NULL: the source then reads the partition and the caller
/// filters.
pub fn select_by_keys(
    d: &dyn Dialect,
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
    keys: &arrow::record_batch::RecordBatch,
) -> crate::Result<Option<Select>> {
    let key_columns: Vec<&MappedColumn> = columns.iter().filter(|c| c.unique).collect();
    if key_columns.is_empty() || keys.num_columns() != key_columns.len() {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(key_columns.len());
    for (c, array) in key_columns.iter().zip(keys.columns()) {
        match KeyValues::of(array, &c.spec.data_type) {
            Some(v) => values.push(v),
            None => return Ok(None),
        }
    }
    let (q, params) = select_partition_sql(d, source, columns, partition);
    let has_where = !source.filters.is_empty()
        || partition
            .ranges
            .iter()
            .any(|(_, r)| !matches!(r, DimRange::All));
    let rendered: Vec<(String, KeyKind)> = key_columns
        .iter()
        .zip(&values)
        .map(|(c, v)| (d.mapped_column(c), v.kind()))
        .collect();
    let condition = d.keys_in(&rendered, params.len() + 1);
    let q = if has_where {
        format!("{q} AND {condition}")
    } else {
        format!("{q} WHERE {condition}")
    };
    Ok(Some(Select {
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
/// same reason). Among the rows of `within` only, when given: its range
/// values are returned, bound by number, so every sub-query reuses them.
pub fn bounds_sql(
    d: &dyn Dialect,
    source: &TableRef,
    within: Option<&Partition>,
    dims: &[PartitionDimension],
) -> (String, Vec<PartitionValue>) {
    let mut params = Vec::new();
    let from = from_sql(d, source);
    let filters = where_sql(d, source, within, &mut params);
    let and = if filters.is_empty() { " WHERE" } else { " AND" };
    let cols = dims
        .iter()
        .map(|dim| {
            let e = d.column(&dim.column);
            format!(
                "(SELECT min({e}) {from}{filters}), (SELECT max({e}) {from}{filters}), \
                 EXISTS (SELECT 1 {from}{filters}{and} {e} IS NULL)"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    (format!("SELECT {cols}"), params)
}

/// `SELECT <mapped columns> ... LIMIT 0`: checks every column resolves.
pub fn probe_sql(d: &dyn Dialect, source: &TableRef, columns: &[MappedColumn]) -> String {
    if let Some(grouped) = &source.grouped {
        let (sql, _) = super::grouped::grouped_select_sql(
            d,
            source,
            grouped,
            columns,
            None,
            super::grouped::GroupMatch::Window(None),
        );
        return format!("{sql} LIMIT 0");
    }
    format!(
        "SELECT {} {} LIMIT 0",
        select_list(d, columns),
        from_sql(d, source)
    )
}

/// The keys of a select by key as one JSON value, as the SQLite and MySQL
/// dialects' `keys_in` read them: an array of the values of one key column,
/// or of one array per key.
pub fn keys_json(keys: &[KeyValues]) -> serde_json::Value {
    use serde_json::Value as Json;
    let value = |k: &KeyValues, i: usize| match k {
        KeyValues::Ints(v) => Json::from(v[i]),
        KeyValues::Texts(v) => Json::from(v[i].as_str()),
    };
    let rows = keys.first().map_or(0, KeyValues::len);
    Json::Array(
        (0..rows)
            .map(|i| match keys {
                [one] => value(one, i),
                _ => Json::Array(keys.iter().map(|k| value(k, i)).collect()),
            })
            .collect(),
    )
}
