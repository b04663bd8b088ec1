//! An aggregate source's reads: the groups a partition's rows touch,
//! re-computed where the data lives or read as rows for DataFusion, how a
//! window's groups are matched (a semi-join, bound keys hashed or looked
//! up), and the keys a read lists besides its window's.

use planner::model::{MappedColumn, StoredHash, TableRef};
use planner::partition::{DimRange, Partition, PartitionValue};

use super::select::{from_sql, range_conditions, select_list};
use super::{Dialect, KeyKind, KeyValues, Select};

/// The source's filters, each parenthesized, as WHERE conditions.
fn filter_conditions(d: &dyn Dialect, source: &TableRef) -> Vec<String> {
    source
        .filters
        .iter()
        .map(|f| format!("({})", d.expr(f)))
        .collect()
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
pub(super) fn grouped_select_sql(
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
    let filters = filter_conditions(d, source);
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
    let mut conds = filter_conditions(d, source);
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
    let mut conds = filter_conditions(d, source);
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
    let ranged = partition.ranges.iter().any(|(_, r)| *r != DimRange::All);
    let keys = if ranged && !listed.is_empty() {
        listed.values.clone()
    } else {
        Vec::new()
    };
    grouped_select(
        d,
        source,
        columns,
        partition,
        GroupMatch::Window(Some(listed)),
        keys,
    )
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
    grouped_select(
        d,
        source,
        columns,
        partition,
        GroupMatch::Bound { keys, lookup },
        keys.values.clone(),
    )
}

/// `grouped_select_sql` of an aggregate source, `keys` bound after its
/// range values.
fn grouped_select(
    d: &dyn Dialect,
    source: &TableRef,
    columns: &[MappedColumn],
    partition: &Partition,
    matching: GroupMatch<'_>,
    keys: Vec<KeyValues>,
) -> Option<Select> {
    let grouped = source.grouped.as_ref()?;
    let (sql, params) = grouped_select_sql(d, source, grouped, columns, Some(partition), matching);
    Some(Select { sql, params, keys })
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
