//! The queries a SQL source runs (a partition's select, its bounds, a probe
//! of the columns, a select by key) and the conditions a sink scopes its
//! deletes with, built through a [`Dialect`].

use planner::model::{MappedColumn, StoredHash, TableRef};
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

fn range_conditions(
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
fn select_list(d: &dyn Dialect, columns: &[MappedColumn]) -> String {
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
        return grouped_select_sql(
            d,
            source,
            grouped,
            columns,
            Some(partition),
            GroupMatch::Window(None),
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

/// How an aggregate's read finds the groups a window's rows touch.
#[derive(Clone, Copy)]
pub enum GroupMatch<'a> {
    /// By a semi-join from the window's distinct keys (`EXISTS`), plus the
    /// `listed` groups.
    Window(Option<&'a ListedGroups>),
    /// The keys are bound (the window's, read first, and any listed ones;
    /// a key may come twice): matched by a hash of the whole table's keys
    /// (`IN`), or, with `lookup`, each key's rows found by an index
    /// (`LATERAL`), which reads only the touched groups' rows.
    Bound {
        keys: &'a ListedGroups,
        lookup: bool,
    },
}

/// One `SELECT` of an aggregate's read: the rows it takes, as WHERE
/// conditions, and for a lookup the keys that drive it (see `lookup_sql`).
struct GroupedPart {
    conds: Vec<String>,
    driver: Option<String>,
}

/// An aggregate source's select: the groups the rows of `partition` touch
/// (every group without a partition, or one without ranges), re-computed
/// over every row of each, in `columns` (the destination's); or, for
/// DataFusion to group, those groups' rows in `columns` (the rows' own).
///
/// With `GroupMatch::Window`, a group is touched when a row of the
/// partition has its keys: `EXISTS (SELECT 1 FROM (SELECT DISTINCT <keys>
/// ... WHERE <ranges>) t WHERE <row's keys match t's>)`, a semi-join from
/// the touched keys into the table. A key `CAST(c AS DATE)` matches as `c >=
/// day AND c < day + 1`, so an index on `c` (or on `(user_id, c)`) finds a
/// group's rows instead of the whole table being scanned for them. A NULL
/// key equals nothing there, so the partition's rows with one are selected
/// on their own (`UNION ALL`): their group (NULL-keyed, which no
/// destination key column takes) then stops the run with the column named,
/// rather than being passed over.
fn grouped_select_sql(
    d: &dyn Dialect,
    source: &TableRef,
    grouped: &planner::model::GroupedRead,
    columns: &[MappedColumn],
    partition: Option<&Partition>,
    matching: GroupMatch<'_>,
) -> (String, Vec<PartitionValue>) {
    let aggregate = &grouped.aggregate;
    let mut params = Vec::new();
    let key_exprs: Vec<String> = aggregate
        .keys
        .iter()
        .map(|k| d.aggregate_expr(&k.expr))
        .collect();
    let keys = key_exprs.join(", ");
    let from = from_sql(d, source);
    let filters: Vec<String> = source
        .filters
        .iter()
        .map(|f| format!("({})", d.expr(f)))
        .collect();
    let where_of = |conds: &[String]| {
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    };
    let touched = d.quote_ident("synchub_touched");
    let names: Vec<String> = (0..key_exprs.len())
        .map(|i| format!("synchub_k{i}"))
        .collect();
    let ranged = partition.filter(|p| p.ranges.iter().any(|(_, r)| *r != DimRange::All));
    let mut parts: Vec<GroupedPart> = Vec::new();
    match ranged {
        None => parts.push(GroupedPart {
            conds: filters.clone(),
            driver: None,
        }),
        // Ranges of the keys themselves hold their groups whole: the rows
        // in them are every row of the groups they touch.
        Some(p) if holds_whole_groups(grouped, p) => {
            let mut conds = filters.clone();
            conds.extend(range_conditions(
                d,
                p,
                |dim| d.column(&dim.column),
                0,
                &mut params,
            ));
            parts.push(GroupedPart {
                conds,
                driver: None,
            });
            if let GroupMatch::Window(Some(listed)) = matching {
                if !listed.is_empty() {
                    let listed = d.listed_keys(&listed.bound(), &names, LISTED_MARK);
                    // Not the range's own groups again: each group once.
                    let range = range_conditions(d, p, |dim| d.column(&dim.column), 0, &mut params);
                    let mut semi = filters.clone();
                    semi.push(format!("({keys}) IN ({listed})"));
                    semi.push(format!("NOT ({})", range.join(" AND ")));
                    parts.push(GroupedPart {
                        conds: semi,
                        driver: None,
                    });
                }
            }
        }
        Some(p) => {
            let mut semi = filters.clone();
            match matching {
                GroupMatch::Window(listed) => {
                    let window_keys =
                        window_keys_sql(d, source, grouped, p, &names, None, &mut params);
                    // Listed groups join the window's; their values are
                    // bound after every range value.
                    let listed_select = listed
                        .filter(|l| !l.is_empty())
                        .map(|l| d.listed_keys(&l.bound(), &names, LISTED_MARK));
                    // `UNION`ed with the window's keys (a group named by
                    // both is read once), unless the dialect matches them
                    // by `IN` (SQLite builds no automatic index on a
                    // compound sub-query, and would re-run it for every
                    // row).
                    let by_in = d.listed_keys_by_in();
                    let union = match &listed_select {
                        Some(listed) if !by_in => format!(" UNION {listed}"),
                        _ => String::new(),
                    };
                    let exists = format!(
                        "EXISTS (SELECT 1 FROM ({window_keys}{union}) AS {touched} WHERE {})",
                        key_matches(d, grouped, &key_exprs, &touched).join(" AND ")
                    );
                    semi.push(match &listed_select {
                        Some(listed) if by_in => format!("({exists} OR ({keys}) IN ({listed}))"),
                        _ => exists,
                    });
                    parts.push(GroupedPart {
                        conds: semi,
                        driver: None,
                    });
                }
                GroupMatch::Bound {
                    keys: bound,
                    lookup,
                } => {
                    let listed = d.listed_keys(&bound.bound(), &names, LISTED_MARK);
                    if lookup {
                        semi.extend(key_matches(d, grouped, &key_exprs, &touched));
                        parts.push(GroupedPart {
                            conds: semi,
                            driver: Some(listed),
                        });
                    } else {
                        semi.push(format!("({keys}) IN ({listed})"));
                        parts.push(GroupedPart {
                            conds: semi,
                            driver: None,
                        });
                    }
                }
            }
            // A NULL key equals nothing: the window's rows with one are
            // selected on their own, so their NULL-keyed group reaches the
            // writer and fails there with the key column named.
            let null_key: Vec<String> =
                key_exprs.iter().map(|k| format!("({k}) IS NULL")).collect();
            let mut nulls = filters;
            nulls.push(format!("({})", null_key.join(" OR ")));
            nulls.extend(range_conditions(
                d,
                p,
                |dim| d.column(&dim.column),
                0,
                &mut params,
            ));
            parts.push(GroupedPart {
                conds: nulls,
                driver: None,
            });
        }
    }
    // A lookup part runs its select once per distinct bound key.
    let render = |part: &GroupedPart, body: String| match &part.driver {
        None => body,
        Some(driver) => lookup_sql(d, driver, &body),
    };
    let sql = match grouped.form {
        planner::model::GroupedForm::Rows => parts
            .iter()
            .map(|part| {
                let body = format!(
                    "SELECT {} {from}{}",
                    select_list(d, columns),
                    where_of(&part.conds)
                );
                render(part, body)
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
        planner::model::GroupedForm::Groups => {
            let mut items: Vec<String> = aggregate
                .keys
                .iter()
                .chain(&aggregate.values)
                .map(|c| {
                    format!(
                        "{} AS {}",
                        d.aggregate_expr(&c.expr),
                        d.quote_ident(&c.dest)
                    )
                })
                .collect();
            // The group's checksum, summed from its rows' hashes (the
            // planner leaves this form to sources that can).
            let group_sum = columns
                .iter()
                .find(|c| c.stored_hash == StoredHash::GroupSum)
                .and_then(|c| {
                    let row_hash = grouped.row_hash_sql.as_deref()?;
                    let sum = d.wrapping_sum(row_hash)?;
                    Some((c, sum))
                });
            if let Some((c, sum)) = &group_sum {
                items.push(format!("{sum} AS {}", d.quote_ident(&c.dest)));
            }
            let outer: Vec<String> = columns
                .iter()
                .map(|c| match c.stored_hash {
                    StoredHash::Compute => d.computed_hash(&c.spec.data_type),
                    StoredHash::GroupSum if group_sum.is_some() => d.quote_ident(&c.dest),
                    StoredHash::GroupSum => d.computed_hash(&c.spec.data_type),
                    _ => d.group_value(&d.quote_ident(&c.dest), &c.spec.data_type),
                })
                .collect();
            let groups = parts
                .iter()
                .map(|part| {
                    let body = format!(
                        "SELECT {} {from}{} GROUP BY {keys}",
                        items.join(", "),
                        where_of(&part.conds)
                    );
                    render(part, body)
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            format!(
                "SELECT {} FROM ({groups}) AS {}",
                outer.join(", "),
                d.quote_ident("synchub_groups")
            )
        }
    };
    // The listed keys' parameters (one, or one per key), now that every
    // range value is in.
    let mut sql = sql;
    for i in (0..aggregate.keys.len()).rev() {
        sql = sql.replace(
            &d.placeholder(LISTED_MARK + i),
            &d.placeholder(params.len() + 1 + i),
        );
    }
    (sql, params)
}

/// Whether an aggregate's read of `p` is of the groups its rows touch
/// rather than of its rows: `p` has ranges that do not hold whole groups
/// (a delta's window).
pub fn reads_touched_groups(grouped: &planner::model::GroupedRead, p: &Partition) -> bool {
    p.ranges.iter().any(|(_, r)| *r != DimRange::All) && !holds_whole_groups(grouped, p)
}

/// Whether every range of `p` is of a group key's own column (or of the
/// column a key is the day of, from midnight to midnight): then the rows
/// in it are all the rows of the groups they touch. A hash run's
/// partitions are such ranges.
pub(crate) fn holds_whole_groups(grouped: &planner::model::GroupedRead, p: &Partition) -> bool {
    const DAY_MICROS: i64 = 86_400_000_000;
    p.ranges.iter().all(|(dim, range)| {
        let key = grouped
            .aggregate
            .key_ranges
            .iter()
            .flatten()
            .find(|k| k.column.rsplit('.').next() == Some(dim.column.column.as_str()));
        match (key, range) {
            (_, DimRange::All) => true,
            (None, _) => false,
            (Some(k), DimRange::Range { start, end }) if k.day_of => [start, end]
                .iter()
                .all(|v| matches!(v, PartitionValue::Micros(m) if m % DAY_MICROS == 0)),
            (Some(_), _) => true,
        }
    })
}

/// `SELECT DISTINCT <keys> ... WHERE <filters and p's ranges>` of the
/// window's rows whose keys are not NULL, each key named `names[i]`; with
/// `bind`, each cast to what it is bound back as (`KeyKind`).
fn window_keys_sql(
    d: &dyn Dialect,
    source: &TableRef,
    grouped: &planner::model::GroupedRead,
    p: &Partition,
    names: &[String],
    bind: Option<&[KeyKind]>,
    params: &mut Vec<PartitionValue>,
) -> String {
    let mut conds: Vec<String> = source
        .filters
        .iter()
        .map(|f| format!("({})", d.expr(f)))
        .collect();
    conds.extend(range_conditions(
        d,
        p,
        |dim| d.column(&dim.column),
        0,
        params,
    ));
    let mut items = Vec::new();
    for (i, k) in grouped.aggregate.keys.iter().enumerate() {
        let e = d.aggregate_expr(&k.expr);
        conds.push(format!("({e}) IS NOT NULL"));
        let item = match bind.map(|b| b[i]) {
            None => e,
            Some(KeyKind::Int) => d.bigint(&e),
            Some(KeyKind::Text) => format!("CAST({e} AS TEXT)"),
        };
        items.push(format!("{item} AS {}", d.quote_ident(&names[i])));
    }
    format!(
        "SELECT DISTINCT {} {}{}",
        items.join(", "),
        from_sql(d, source),
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    )
}

/// A row's keys equal to `touched`'s (`synchub_k<i>`), each as an index can
/// find it: a day's rows as a range of the column it is cast from, others
/// by equality.
fn key_matches(
    d: &dyn Dialect,
    grouped: &planner::model::GroupedRead,
    key_exprs: &[String],
    touched: &str,
) -> Vec<String> {
    grouped
        .aggregate
        .keys
        .iter()
        .zip(key_exprs)
        .enumerate()
        .map(|(i, (k, e))| {
            let t = format!("{touched}.{}", d.quote_ident(&format!("synchub_k{i}")));
            match k.expr.date_of_column() {
                Some(c) => {
                    let c = d.expr(&c);
                    format!("{c} >= {t} AND {c} < {}", d.next_day(&t))
                }
                None => format!("{e} = {t}"),
            }
        })
        .collect()
}

/// `body` run once per distinct key of `driver` (a lateral join, which
/// the database can only answer key by key: the index lookups a few keys
/// want, whatever its estimates say). `OFFSET 0` keeps PostgreSQL from
/// flattening a body without a GROUP BY into a plain join, which it would
/// be free to answer with a scan of the whole table.
fn lookup_sql(d: &dyn Dialect, driver: &str, body: &str) -> String {
    let rows = d.quote_ident("synchub_rows");
    format!(
        "SELECT {rows}.* FROM (SELECT DISTINCT * FROM ({driver}) AS {}) AS {} CROSS JOIN LATERAL ({body} OFFSET 0) AS {rows}",
        d.quote_ident("synchub_listed_keys"),
        d.quote_ident("synchub_touched"),
    )
}

/// The distinct keys of the rows in `partition`'s window (not NULL), one
/// column per group key, cast as `kinds` bind them: what an aggregate's
/// read binds (`GroupMatch::Bound`) after reading them. `None` for a
/// partition without ranges, or a source that is not an aggregate's.
pub fn window_keys_select(
    d: &dyn Dialect,
    source: &TableRef,
    partition: &Partition,
    kinds: &[KeyKind],
) -> Option<Select> {
    let grouped = source.grouped.as_ref()?;
    if !reads_touched_groups(grouped, partition) {
        return None;
    }
    let names: Vec<String> = (0..kinds.len()).map(|i| format!("synchub_k{i}")).collect();
    let mut params = Vec::new();
    let sql = window_keys_sql(
        d,
        source,
        grouped,
        partition,
        &names,
        Some(kinds),
        &mut params,
    );
    Some(Select {
        sql,
        params,
        keys: Vec::new(),
    })
}

/// How many rows the groups of `sample` (bound keys) have, counted by the
/// same lookups `GroupMatch::Bound { lookup: true }` makes.
pub fn lookup_rows_select(
    d: &dyn Dialect,
    source: &TableRef,
    sample: &ListedGroups,
) -> Option<Select> {
    let grouped = source.grouped.as_ref()?;
    let key_exprs: Vec<String> = grouped
        .aggregate
        .keys
        .iter()
        .map(|k| d.aggregate_expr(&k.expr))
        .collect();
    let names: Vec<String> = (0..key_exprs.len())
        .map(|i| format!("synchub_k{i}"))
        .collect();
    let mut conds: Vec<String> = source
        .filters
        .iter()
        .map(|f| format!("({})", d.expr(f)))
        .collect();
    conds.extend(key_matches(
        d,
        grouped,
        &key_exprs,
        &d.quote_ident("synchub_touched"),
    ));
    let body = format!(
        "SELECT 1 AS {} {} WHERE {}",
        d.quote_ident("one"),
        from_sql(d, source),
        conds.join(" AND ")
    );
    let driver = d.listed_keys(&sample.bound(), &names, 1);
    Some(Select {
        sql: format!(
            "SELECT {} FROM ({}) AS {}",
            d.bigint("count(*)"),
            lookup_sql(d, &driver, &body),
            d.quote_ident("synchub_sample")
        ),
        params: Vec::new(),
        keys: sample.values.clone(),
    })
}

/// The parameter number the listed keys are written with until the range
/// values are counted: no select binds that many.
const LISTED_MARK: usize = 999_999;

/// Group keys an aggregate's read re-computes besides those its partition's
/// rows touch (groups a delta with `track_moves` found rows moved out of):
/// one list per key column, each with the SQL type its values are cast to.
#[derive(Debug, Clone)]
pub struct ListedGroups {
    pub values: Vec<KeyValues>,
    pub types: Vec<planner::types::ColumnType>,
}

impl ListedGroups {
    /// `keys` (one column per group key, in key order, destination types
    /// `types`): integers bound as integers, everything else as its text.
    pub fn of(
        keys: &arrow::record_batch::RecordBatch,
        types: &[planner::types::ColumnType],
    ) -> crate::Result<ListedGroups> {
        use arrow::array::AsArray;
        use arrow::datatypes::DataType;
        let mut values = Vec::with_capacity(types.len());
        for (column, ty) in keys.columns().iter().zip(types) {
            if column.null_count() > 0 {
                return Err(crate::ConnectorError::Other(
                    "a listed group key is NULL (an operator's bug)".into(),
                ));
            }
            values.push(if KeyKind::of(ty) == KeyKind::Int {
                let ints = arrow::compute::cast(column, &DataType::Int64)?;
                KeyValues::Ints(
                    ints.as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec(),
                )
            } else {
                let texts = arrow::compute::cast(column, &DataType::Utf8)?;
                KeyValues::Texts(
                    texts
                        .as_string::<i32>()
                        .iter()
                        .map(|t| t.unwrap_or_default().to_string())
                        .collect(),
                )
            });
        }
        Ok(ListedGroups {
            values,
            types: types.to_vec(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.values.first().is_none_or(KeyValues::is_empty)
    }

    /// How many groups are listed (a group may be listed twice).
    pub fn len(&self) -> usize {
        self.values.first().map_or(0, KeyValues::len)
    }

    /// At most `n` of the groups, spread evenly over the list.
    pub fn sample(&self, n: usize) -> ListedGroups {
        let len = self.len();
        let positions: Vec<usize> = if len <= n {
            (0..len).collect()
        } else {
            (0..n).map(|i| i * len / n).collect()
        };
        ListedGroups {
            values: self.values.iter().map(|v| v.at(&positions)).collect(),
            types: self.types.clone(),
        }
    }

    /// Each key's bind kind and type, as `Dialect::listed_keys` takes them.
    fn bound(&self) -> Vec<(KeyKind, planner::types::ColumnType)> {
        self.values
            .iter()
            .zip(&self.types)
            .map(|(v, t)| (v.kind(), *t))
            .collect()
    }
}

/// An aggregate source's groups touched by `partition`'s rows and the
/// `listed` groups, re-computed whole (see `grouped_select_sql`).
pub fn select_groups_sql(
    d: &dyn Dialect,
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
    listed: &ListedGroups,
) -> Option<Select> {
    let grouped = source.grouped.as_ref()?;
    let (sql, params) = grouped_select_sql(
        d,
        source,
        grouped,
        columns,
        Some(partition),
        GroupMatch::Window(Some(listed)),
    );
    let ranged = partition.ranges.iter().any(|(_, r)| *r != DimRange::All);
    let keys = if ranged && !listed.is_empty() {
        listed.values.clone()
    } else {
        Vec::new()
    };
    Some(Select { sql, params, keys })
}

/// An aggregate source's groups touched by `partition`'s rows, with the
/// keys of those groups bound (`GroupMatch::Bound`): `keys` holds the
/// window's (read by `window_keys_select`) and any listed ones.
pub fn select_bound_groups_sql(
    d: &dyn Dialect,
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
    keys: &ListedGroups,
    lookup: bool,
) -> Option<Select> {
    let grouped = source.grouped.as_ref()?;
    let (sql, params) = grouped_select_sql(
        d,
        source,
        grouped,
        columns,
        Some(partition),
        GroupMatch::Bound { keys, lookup },
    );
    Some(Select {
        sql,
        params,
        keys: keys.values.clone(),
    })
}

/// What to say when the database finds no column `missing` in an
/// aggregate's source: which of the group-by's expressions read it.
/// `None` for a source that is not an aggregate's, or a name none reads.
pub fn aggregate_missing_column(source: &TableRef, missing: &str) -> Option<crate::ConnectorError> {
    let aggregate = &source.grouped.as_ref()?.aggregate;
    let bare = missing.rsplit('.').next().unwrap_or(missing);
    let readers: Vec<String> = aggregate
        .keys
        .iter()
        .chain(&aggregate.values)
        .filter(|c| c.reads.iter().any(|r| r == bare))
        .map(|c| format!("\"{}\" ({})", c.dest, c.expr))
        .collect();
    if readers.is_empty() {
        return None;
    }
    Some(crate::ConnectorError::Schema(format!(
        "source column \"{bare}\" does not exist in {}; the group-by reads it in {}: fix the name in the data_fetch stage's columns or add the column to the source",
        source.display_name(),
        readers.join(", ")
    )))
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
    fn at(&self, positions: &[usize]) -> KeyValues {
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
        let (sql, _) =
            grouped_select_sql(d, source, grouped, columns, None, GroupMatch::Window(None));
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
