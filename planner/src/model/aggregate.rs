//! `sync_type: aggregate`: the group-by a `data_fetch` stage declares
//! (`columns` with `expr`, `group_by`), parsed once into SQL expression
//! trees, and every check that a pipeline can fail before a run: names the
//! source does not have, keys the destination cannot upsert on, select-list
//! columns that are neither grouped nor aggregated, and expressions that
//! give another answer on every run.

use std::collections::HashSet;
use std::fmt;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{Expr, Visit, Visitor};

use super::{MappedColumn, Problems, StoredHash};
use crate::column_ref::ColumnRef;
use crate::config::{
    BackendConfig, PipelineFile, StageColumn, StageConfig, StrategyConfig, StrategyType,
};
use crate::partition::Step;
use crate::sql_expr::{SqlDialect, SqlExpr};
use crate::yaml;

/// The aggregate functions a value column may call. Every one of them gives
/// the same result for the same set of rows, in any order, which is what
/// re-computing only the touched groups relies on.
pub const AGGREGATE_FUNCTIONS: [&str; 5] = ["count", "sum", "min", "max", "avg"];

/// Functions whose result changes from one call to the next: a group
/// computed with one would differ on every run, so every run would rewrite
/// it (and a delta run, seeing no changed rows, would never correct it).
const NON_DETERMINISTIC: [&str; 14] = [
    "random",
    "rand",
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "uuid",
    "gen_random_uuid",
];

/// The sources that compute a row's hash in their own SQL, and so a
/// group's checksum in the group-by (`StoredHash::GroupSum`).
pub const HASHES_IN_SQL: [&str; 2] = ["postgres", "sqlite"];

/// A row-level column's `expr` (a transform), at `path`, parsed in the
/// source's `dialect`: one SQL expression over the source row's columns
/// (`source_names`, when known), giving the same value for the same row on
/// every run, with no aggregate function.
pub(crate) fn transform_expr(
    path: &str,
    column: &str,
    text: &str,
    dialect: SqlDialect,
    source_names: &[&str],
    problems: &mut Problems,
) -> Option<SqlExpr> {
    if text.trim_start().starts_with("lambda") {
        problems.push(
            path,
            format!("column \"{column}\": Python lambdas are not evaluated; write the value as a SQL expression over the source's columns, e.g. round(total_amount * 1.1, 2)"),
        );
        return None;
    }
    let expr = match SqlExpr::parse(text, dialect) {
        Ok(e) => e,
        Err(why) => {
            problems.push(
                path,
                format!("column \"{column}\": \"{text}\" is not one SQL expression: {why}"),
            );
            return None;
        }
    };
    let before = problems.0.len();
    let mut reads = Reads::default();
    let _ = expr.expr().visit(&mut reads);
    if let Some(f) = &reads.non_deterministic {
        problems.push(
            path,
            format!("column \"{column}\": {f}() gives another value on every call, so the row would differ on every run; compute it from the row's columns"),
        );
    }
    if reads.aggregates > 0 {
        problems.push(
            path,
            format!("column \"{column}\" calls an aggregate function in a row-level sync; sync_type: aggregate with group_by computes groups"),
        );
    }
    if !source_names.is_empty() {
        for name in &reads.columns {
            if !source_names.contains(&name.as_str()) {
                let hint = yaml::closest(name, source_names)
                    .map(|c| format!("; did you mean \"{c}\"?"))
                    .unwrap_or_else(|| format!("; its columns: {}", source_names.join(", ")));
                problems.push(
                    path,
                    format!("column \"{column}\" reads \"{name}\", which the source backend does not have{hint}"),
                );
            }
        }
    }
    (problems.0.len() == before).then_some(expr)
}

/// Which engine re-computes the touched groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateEngine {
    /// The source when it runs SQL, else DataFusion.
    #[default]
    Auto,
    /// The group-by is rendered in the source's SQL dialect and run there.
    Source,
    /// The touched groups' source rows are read as Arrow and grouped in
    /// DataFusion.
    Datafusion,
}

impl AggregateEngine {
    fn parse(text: &str) -> Option<AggregateEngine> {
        match text {
            "auto" => Some(AggregateEngine::Auto),
            "source" => Some(AggregateEngine::Source),
            "datafusion" => Some(AggregateEngine::Datafusion),
            _ => None,
        }
    }
}

impl fmt::Display for AggregateEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggregateEngine::Auto => "auto",
            AggregateEngine::Source => "source",
            AggregateEngine::Datafusion => "datafusion",
        })
    }
}

/// One column of the group-by's select list: the destination column it
/// fills and the expression over source columns that computes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateColumn {
    pub dest: String,
    pub expr: SqlExpr,
    /// The source columns the expression reads, in order of first use.
    pub reads: Vec<String>,
}

/// An aggregate sync's group-by, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    /// The `group_by` columns, in `group_by` order: one destination row per
    /// distinct combination of their values.
    pub keys: Vec<AggregateColumn>,
    /// The aggregated columns, in select-list order.
    pub values: Vec<AggregateColumn>,
    pub engine: AggregateEngine,
    /// Per strategy (by position in `strategies`): the keys its
    /// `delta_partitions` extract from changed rows, as indexes into `keys`.
    pub delta_keys: Vec<Vec<usize>>,
    /// The source columns the expressions read, typed by the source
    /// backend's `data_type`: what the `datafusion` engine reads of each
    /// row. `None` when one of them has no `data_type` there.
    #[serde(skip)]
    pub row_columns: Option<Vec<MappedColumn>>,
    /// Per key (in `keys` order): the source column whose ranges hold its
    /// groups whole, when it has one (see [`KeyRange`]).
    pub key_ranges: Vec<Option<KeyRange>>,
    /// The destination column holding each group's checksum
    /// (`StoredHash::GroupSum`), if the destination has one.
    pub group_sum: Option<String>,
    /// The source's row key (its `unique_column: true` columns, typed):
    /// what a delta with `track_moves` remembers each row's group by.
    #[serde(skip)]
    pub row_key: Option<Vec<MappedColumn>>,
}

/// A group key that a range of one source column selects whole groups of:
/// the key is the column itself, or its day (`CAST(c AS DATE)`). A hash
/// run's partitions must be such ranges, so the same range over the
/// destination's key column holds exactly the groups of the source rows in
/// it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRange {
    /// The source column.
    pub column: String,
    /// The key is the day of `column`: only ranges that start and end on a
    /// day hold whole groups.
    pub day_of: bool,
    /// The names a partition may give it: the source column, the key's
    /// destination name, and a destination virtual column mapping to the
    /// key (`order_date: expr: date`).
    pub names: Vec<String>,
}

/// How an aggregate sync's source is read: as the groups its rows make,
/// re-computed where the data lives, or as the rows of those groups, for
/// DataFusion to group. Either way only the groups the partition's rows
/// touch, every row of each (a group is never merged with an earlier
/// result, which keeps `min`/`max` right); a partition without ranges
/// touches every group.
#[derive(Debug, Clone)]
pub struct GroupedRead {
    pub aggregate: Aggregate,
    pub form: GroupedForm,
    /// A source row's hash over the aggregate's row hash columns, as the
    /// source's SQL computes it: set by the source connector (it depends on
    /// the source's own column types), summed per group into the
    /// `StoredHash::GroupSum` column by the `Groups` form.
    pub row_hash_sql: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupedForm {
    /// Keys then values, computed by the source's SQL.
    Groups,
    /// The `row_columns` of every row of the touched groups.
    Rows,
}

impl Aggregate {
    /// The engine that re-computes the groups from a source of connector
    /// type `source_kind` (`postgres`), and why that one.
    pub fn resolved_engine(&self, source_kind: &str) -> (AggregateEngine, &'static str) {
        let runs_sql = ["postgres", "sqlite", "mysql"].contains(&source_kind);
        match self.engine {
            AggregateEngine::Source => (AggregateEngine::Source, "aggregate_engine: source"),
            AggregateEngine::Datafusion => {
                (AggregateEngine::Datafusion, "aggregate_engine: datafusion")
            }
            AggregateEngine::Auto if !runs_sql => {
                (AggregateEngine::Datafusion, "auto: the source runs no SQL")
            }
            AggregateEngine::Auto
                if self.group_sum.is_some() && !HASHES_IN_SQL.contains(&source_kind) =>
            {
                (
                    AggregateEngine::Datafusion,
                    "auto: the groups' checksums (hash_key) are sums of row hashes, which this source cannot compute in SQL",
                )
            }
            AggregateEngine::Auto if source_kind == "sqlite" && self.sums_decimals() => (
                AggregateEngine::Datafusion,
                "auto: SQLite adds decimals as floating point; DataFusion adds them exactly",
            ),
            AggregateEngine::Auto => (
                AggregateEngine::Source,
                "auto: the source sends the groups, fewer bytes than their rows",
            ),
        }
    }

    /// The source columns a row's hash covers, for the groups' checksums:
    /// every column the group-by reads, typed as the source backend types
    /// them. `None` when one has no `data_type` there.
    pub fn row_hash_columns(&self) -> Option<Vec<MappedColumn>> {
        self.row_columns.as_ref().map(|rows| {
            rows.iter()
                .map(|c| MappedColumn {
                    hash_column: true,
                    ..c.clone()
                })
                .collect()
        })
    }

    /// What a delta with `track_moves` reads of each source row: its key,
    /// then the other columns the group keys read. `None` without a typed
    /// row key or typed key columns.
    pub fn moves_columns(&self) -> Option<Vec<MappedColumn>> {
        let mut columns = self.row_key.clone()?;
        let rows = self.row_columns.as_ref()?;
        for read in self.keys.iter().flat_map(|k| &k.reads) {
            if columns.iter().any(|c| &c.dest == read) {
                continue;
            }
            columns.push(rows.iter().find(|c| &c.dest == read)?.clone());
        }
        Some(columns)
    }

    /// Whether a `sum` or `avg` reads a decimal source column.
    fn sums_decimals(&self) -> bool {
        let Some(rows) = &self.row_columns else {
            return false;
        };
        self.values.iter().any(|v| {
            let text = v.expr.to_string().to_ascii_lowercase();
            (text.contains("sum(") || text.contains("avg("))
                && v.reads.iter().any(|r| {
                    rows.iter().any(|c| {
                        &c.dest == r
                            && matches!(c.spec.data_type, crate::types::ColumnType::Decimal { .. })
                    })
                })
        })
    }

    /// The group-by as one SQL statement over `table` (already quoted), in
    /// the pipeline's own spelling; a connector renders its dialect's from
    /// the trees.
    pub fn select_sql(&self, table: &str) -> String {
        let item = |c: &AggregateColumn| format!("{} AS {}", c.expr, super::quote_ident(&c.dest));
        let items: Vec<String> = self.keys.iter().chain(&self.values).map(item).collect();
        let groups: Vec<String> = self.keys.iter().map(|k| k.expr.to_string()).collect();
        format!(
            "SELECT {} FROM {table} GROUP BY {}",
            items.join(", "),
            groups.join(", ")
        )
    }
}

/// What kind of sync a pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SyncType {
    RowLevel,
    Aggregate,
}

/// The names an expression reads, and where it calls what.
#[derive(Default)]
struct Reads {
    columns: Vec<String>,
    /// Columns read outside any aggregate call.
    bare_columns: Vec<String>,
    aggregates: usize,
    /// An aggregate call inside another.
    nested_aggregate: Option<String>,
    non_deterministic: Option<String>,
    depth_in_aggregate: usize,
}

fn function_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => Some(f.name.to_string().to_ascii_lowercase()),
        _ => None,
    }
}

impl Visitor for Reads {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let column = match expr {
            Expr::Identifier(i) => Some(i.value.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
            _ => None,
        };
        if let Some(c) = column {
            if self.depth_in_aggregate == 0 {
                self.bare_columns.push(c.clone());
            }
            if !self.columns.contains(&c) {
                self.columns.push(c);
            }
        }
        if let Some(name) = function_name(expr) {
            if NON_DETERMINISTIC.contains(&name.as_str()) {
                self.non_deterministic.get_or_insert(name.clone());
            }
            if AGGREGATE_FUNCTIONS.contains(&name.as_str()) {
                if self.depth_in_aggregate > 0 {
                    self.nested_aggregate.get_or_insert(name);
                }
                self.aggregates += 1;
                self.depth_in_aggregate += 1;
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if function_name(expr).is_some_and(|n| AGGREGATE_FUNCTIONS.contains(&n.as_str())) {
            self.depth_in_aggregate -= 1;
        }
        ControlFlow::Continue(())
    }
}

/// Whether the pipeline is a row-level or an aggregate sync; an unknown
/// `sync_type` is a problem.
pub(super) fn sync_type(raw: &PipelineFile, problems: &mut Problems) -> Option<SyncType> {
    match raw.sync_type.as_deref() {
        None | Some("row-level") | Some("row_level") => Some(SyncType::RowLevel),
        Some("aggregate") => Some(SyncType::Aggregate),
        Some(other) => {
            problems.push(
                "sync_type",
                format!("unknown sync_type \"{other}\"; use row-level or aggregate"),
            );
            None
        }
    }
}

/// The `dedup` stage of an aggregate sync: it may apply to one strategy
/// type only, and its keys must be the group-by's (one destination row per
/// key), the only dedup an aggregate has.
pub(super) fn check_dedup_stage(
    i: usize,
    stage: &StageConfig,
    group_by: &[String],
    problems: &mut Problems,
) {
    if let Some(on) = &stage.applicable_on {
        if !["full", "delta", "hash"].contains(&on.as_str()) {
            problems.push(
                format!("stages[{i}].applicable_on"),
                format!("unknown applicable_on \"{on}\"; use a strategy type: full, delta or hash"),
            );
        }
    }
    let keys = stage
        .config
        .as_ref()
        .map(|c| c.dedup_keys.clone())
        .unwrap_or_default();
    let as_set = |v: &[String]| v.iter().cloned().collect::<HashSet<_>>();
    // No group_by is reported on its own.
    if !keys.is_empty() && !group_by.is_empty() && as_set(&keys) != as_set(group_by) {
        problems.push(
            format!("stages[{i}].config.dedup_keys"),
            format!(
                "dedup_keys [{}] must be the group_by columns [{}]: an aggregate writes one destination row per group",
                keys.join(", "),
                group_by.join(", ")
            ),
        );
    }
}

/// Parses and checks the group-by of the data_fetch stage `i`: returns it
/// with the destination names the select list fills, or `None` after
/// pushing its problems.
#[allow(clippy::too_many_arguments)]
pub(super) fn normalize_aggregate(
    raw: &PipelineFile,
    i: usize,
    fetch_columns: &[StageColumn],
    group_by: &[String],
    src: &BackendConfig,
    dst: &BackendConfig,
    di: usize,
    dialect: SqlDialect,
    problems: &mut Problems,
) -> Option<Aggregate> {
    let before = problems.0.len();
    let stage_path = format!("stages[{i}].source");
    if group_by.is_empty() {
        problems.push(
            format!("{stage_path}.group_by"),
            "an aggregate sync needs group_by: the columns whose distinct values make one destination row each (e.g. group_by: [user_id, date])",
        );
    }
    let engine = match raw.aggregate_engine.as_deref() {
        None => AggregateEngine::Auto,
        Some(text) => AggregateEngine::parse(text).unwrap_or_else(|| {
            problems.push(
                "aggregate_engine",
                format!("unknown aggregate_engine \"{text}\"; use auto, source or datafusion"),
            );
            AggregateEngine::Auto
        }),
    };
    // With no column list on the source backend there is nothing to check
    // names against here; the source itself refuses an unknown one.
    let source_names: Vec<&str> = src
        .columns
        .iter()
        .filter(|c| c.is_virtual != Some(true))
        .map(|c| c.name.as_str())
        .collect();
    let unique: Vec<&str> = dst
        .columns
        .iter()
        .filter(|c| c.unique_column == Some(true))
        .map(|c| c.name.as_str())
        .collect();
    for (k, g) in group_by.iter().enumerate() {
        if !unique.contains(&g.as_str()) {
            problems.push(
                format!("{stage_path}.group_by[{k}]"),
                format!(
                    "group_by column \"{g}\" is not a unique column of the destination (backend \"{}\"; unique: {}): each group is one destination row, upserted on the group_by columns, so mark \"{g}\" unique_column: true there",
                    dst.name,
                    if unique.is_empty() { "none".to_string() } else { unique.join(", ") }
                ),
            );
        }
        if !fetch_columns.iter().any(|c| &c.name == g) && !source_names.contains(&g.as_str()) {
            problems.push(
                format!("{stage_path}.group_by[{k}]"),
                format!("group_by column \"{g}\" is neither a column of this stage nor of backend \"{}\"; add it to columns (with an expr if it is computed)", src.name),
            );
        }
    }
    for u in &unique {
        if !group_by.iter().any(|g| g == u) {
            problems.push(
                format!("backends[{di}].columns"),
                format!("unique column \"{u}\" of an aggregate destination must be a group_by column: the group_by columns are the key each group is upserted on"),
            );
        }
    }
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for (j, c) in fetch_columns.iter().enumerate() {
        let path = format!("{stage_path}.columns[{j}]");
        let text = c
            .expr
            .clone()
            .unwrap_or_else(|| super::quote_ident(&c.name));
        let expr = match SqlExpr::parse(&text, dialect) {
            Ok(e) => e,
            Err(why) => {
                problems.push(
                    format!("{path}.expr"),
                    format!(
                        "column \"{}\": \"{text}\" is not one SQL expression: {why}",
                        c.name
                    ),
                );
                continue;
            }
        };
        let mut reads = Reads::default();
        let _ = expr.expr().visit(&mut reads);
        let grouped = group_by.iter().any(|g| g == &c.name);
        if let Some(f) = &reads.non_deterministic {
            problems.push(
                format!("{path}.expr"),
                format!("column \"{}\": {f}() gives another value on every call, so the group would differ on every run; aggregate a source column instead (e.g. max(updated_at))", c.name),
            );
        }
        if !source_names.is_empty() {
            for name in &reads.columns {
                if !source_names.contains(&name.as_str()) {
                    let hint = yaml::closest(name, &source_names)
                        .map(|c| format!("; did you mean \"{c}\"?"))
                        .unwrap_or_else(|| format!("; its columns: {}", source_names.join(", ")));
                    problems.push(
                        if c.expr.is_some() { format!("{path}.expr") } else { format!("{path}.name") },
                        format!("column \"{}\" reads \"{name}\", which backend \"{}\" does not have{hint}", c.name, src.name),
                    );
                }
            }
        }
        if let Some(f) = &reads.nested_aggregate {
            problems.push(
                format!("{path}.expr"),
                format!(
                    "column \"{}\": {f}() inside another aggregate; aggregate source columns only",
                    c.name
                ),
            );
        }
        let column = AggregateColumn {
            dest: c.name.clone(),
            expr,
            reads: reads.columns.clone(),
        };
        if grouped {
            if reads.aggregates > 0 {
                problems.push(
                    format!("{path}.expr"),
                    format!("group_by column \"{}\" calls an aggregate function; a group key is computed from each source row (e.g. CAST(order_date AS DATE))", c.name),
                );
            }
            keys.push((group_by.iter().position(|g| g == &c.name), column));
        } else if reads.aggregates == 0 || !reads.bare_columns.is_empty() {
            let bare = reads
                .bare_columns
                .first()
                .cloned()
                .unwrap_or_else(|| c.name.clone());
            problems.push(
                path.clone(),
                format!("column \"{}\" is neither in group_by nor an aggregate: \"{bare}\" is read outside {}; add \"{}\" to group_by or aggregate it (e.g. max({bare}))", c.name, AGGREGATE_FUNCTIONS.map(|f| format!("{f}()")).join(", "), c.name),
            );
        } else {
            values.push(column);
        }
    }
    // A group_by name that is a plain source column, not listed in columns.
    for (k, g) in group_by.iter().enumerate() {
        if !keys.iter().any(|(_, c)| &c.dest == g) && source_names.contains(&g.as_str()) {
            if let Ok(expr) = SqlExpr::parse(&super::quote_ident(g), dialect) {
                keys.push((
                    Some(k),
                    AggregateColumn {
                        dest: g.clone(),
                        expr,
                        reads: vec![g.clone()],
                    },
                ));
            }
        }
    }
    keys.sort_by_key(|(k, _)| *k);
    let keys: Vec<AggregateColumn> = keys.into_iter().map(|(_, c)| c).collect();
    let computed = |name: &str| keys.iter().chain(&values).any(|c| c.dest == name);
    for (ci, dc) in dst.columns.iter().enumerate() {
        if dc.is_virtual == Some(true) || dc.hash_key == Some(true) {
            continue;
        }
        if !computed(&dc.name) && !fetch_columns.iter().any(|c| c.name == dc.name) {
            problems.push(
                format!("backends[{di}].columns[{ci}].name"),
                format!("destination column \"{}\" is not computed by the group-by of stages[{i}]: add it to that stage's columns with an expr (e.g. sum({}))", dc.name, dc.name),
            );
        }
    }
    for (j, c) in fetch_columns.iter().enumerate() {
        if !dst.columns.iter().any(|dc| dc.name == c.name) {
            problems.push(
                format!("{stage_path}.columns[{j}].name"),
                format!("column \"{}\" is computed but backend \"{}\" has no column of that name to store it in; add it there or remove it here", c.name, dst.name),
            );
        }
    }
    let delta_keys = raw
        .strategies
        .iter()
        .enumerate()
        .map(|(si, s)| delta_keys(si, s, &keys, dst, problems))
        .collect();
    let row_columns = row_columns(src, &keys, &values);
    let key_ranges = keys.iter().map(|k| key_range(k, dst)).collect();
    let group_sum = dst
        .columns
        .iter()
        .find(|c| c.hash_key == Some(true))
        .map(|c| c.name.clone());
    if let Some(sum) = &group_sum {
        // Not after another problem: an unknown name is untyped too.
        if row_columns.is_none() && problems.0.len() == before {
            problems.push(
                format!("backends[{di}].columns"),
                format!("hash_key column \"{sum}\" holds the sum of its group's row hashes, over the source columns the group-by reads: give each of them a data_type in backend \"{}\"", src.name),
            );
        }
    }
    if engine == AggregateEngine::Datafusion && row_columns.is_none() {
        problems.push(
            "aggregate_engine",
            format!("aggregate_engine: datafusion reads the source rows as typed columns: give every column the expressions read a data_type in backend \"{}\"", src.name),
        );
    }
    let row_key = row_key(src);
    for (si, s) in raw.strategies.iter().enumerate() {
        let StrategyType::Delta(d) = &s.kind else {
            continue;
        };
        if d.track_moves != Some(true) {
            continue;
        }
        if row_key.is_none() {
            problems.push(
                format!("strategies[{si}].track_moves"),
                format!("track_moves remembers each source row's group by the row's key: mark the key column(s) of backend \"{}\" unique_column: true with a data_type (e.g. {{name: order_id, data_type: integer, unique_column: true}})", src.name),
            );
        } else if row_columns.is_none() && problems.0.len() == before {
            problems.push(
                format!("strategies[{si}].track_moves"),
                format!("track_moves computes each source row's group keys from its columns: give every column the group_by reads a data_type in backend \"{}\"", src.name),
            );
        }
    }
    if problems.0.len() > before {
        return None;
    }
    Some(Aggregate {
        keys,
        values,
        engine,
        delta_keys,
        row_columns,
        key_ranges,
        group_sum,
        row_key,
    })
}

/// The source column whose ranges hold `key`'s groups whole, if any.
fn key_range(key: &AggregateColumn, dst: &BackendConfig) -> Option<KeyRange> {
    let day_of = key.expr.date_of_column().is_some();
    if key.reads.len() != 1 || !(day_of || key.expr.is_column()) {
        return None;
    }
    let column = key.reads[0].clone();
    let mut names = vec![column.clone()];
    if !names.contains(&key.dest) {
        names.push(key.dest.clone());
    }
    for c in &dst.columns {
        if c.is_virtual == Some(true)
            && c.expr.as_deref() == Some(key.dest.as_str())
            && !names.contains(&c.name)
        {
            names.push(c.name.clone());
        }
    }
    Some(KeyRange {
        column,
        day_of,
        names,
    })
}

/// A hash strategy's partitions of an aggregate, made ranges of the group
/// keys: each must name a key that a source column's ranges hold whole
/// ([`KeyRange`]); it is then read from that column on the source and
/// named (and so read on the destination) as the key's destination column.
/// A key that is a day is cut on whole days only.
pub(super) fn key_dimensions(
    strategy: &mut super::Strategy,
    aggregate: &Aggregate,
    problems: &mut Problems,
) {
    let si = strategy.index;
    if aggregate.group_sum.is_none() {
        problems.push(
            format!("strategies[{si}].type"),
            "hash for sync_type: aggregate compares each partition's source rows with the checksums of its groups stored in the destination: add a destination column with hash_key: true and data_type: bigint",
        );
        return;
    }
    let row_types = aggregate.row_columns.clone().unwrap_or_default();
    for (field, dims) in [
        ("primary_partitions", &mut strategy.primary),
        ("secondary_partitions", &mut strategy.secondary),
    ] {
        for (j, dim) in dims.iter_mut().enumerate() {
            let path = format!("strategies[{si}].{field}[{j}]");
            let found = aggregate
                .keys
                .iter()
                .zip(&aggregate.key_ranges)
                .find(|(_, r)| r.as_ref().is_some_and(|r| r.names.contains(&dim.name)));
            let Some((key, Some(range))) = found else {
                let names: Vec<String> = aggregate
                    .key_ranges
                    .iter()
                    .flatten()
                    .flat_map(|r| r.names.clone())
                    .collect();
                problems.push(
                    format!("{path}.column"),
                    format!(
                        "partition column \"{}\" is not a group key of the aggregate nor the column one is read from: a hash run compares whole groups, so each partition must be a range of a group_by column or of the column it is the day of; use one of: {}",
                        dim.name,
                        names.join(", ")
                    ),
                );
                continue;
            };
            if range.day_of {
                let whole_days = match dim.step {
                    Step::Micros(m) => m % MICROS_PER_DAY == 0,
                    Step::Months(_) | Step::Single => true,
                    Step::Int(_) => false,
                };
                if !whole_days {
                    problems.push(
                        format!("{path}.step"),
                        format!(
                            "group key \"{}\" is the day of \"{}\", so a partition holds its groups whole only if it cuts on whole days: use step_unit day, week, month or year",
                            key.dest, range.column
                        ),
                    );
                    continue;
                }
            }
            dim.name = key.dest.clone();
            dim.column = ColumnRef::bare(&range.column);
            dim.date_only = row_types
                .iter()
                .find(|c| c.dest == range.column)
                .is_some_and(|c| c.spec.data_type == crate::types::ColumnType::Date);
        }
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The source backend's `unique_column: true` columns, typed; `None` when
/// it marks none, or one has no `data_type`.
fn row_key(src: &BackendConfig) -> Option<Vec<MappedColumn>> {
    let unique: Vec<&str> = src
        .columns
        .iter()
        .filter(|c| c.unique_column == Some(true))
        .map(|c| c.name.as_str())
        .collect();
    if unique.is_empty() {
        return None;
    }
    let typed = typed_source_columns(src, unique)?;
    Some(
        typed
            .into_iter()
            .map(|c| MappedColumn {
                unique: true,
                spec: crate::types::ColumnSpec {
                    unique: true,
                    nullable: false,
                    ..c.spec
                },
                ..c
            })
            .collect(),
    )
}

/// The source columns the key and value expressions read, typed by their
/// `data_type` in the source backend; `None` when one has none.
fn row_columns(
    src: &BackendConfig,
    keys: &[AggregateColumn],
    values: &[AggregateColumn],
) -> Option<Vec<MappedColumn>> {
    let mut names: Vec<&str> = Vec::new();
    for r in keys.iter().chain(values).flat_map(|c| &c.reads) {
        if !names.contains(&r.as_str()) {
            names.push(r);
        }
    }
    typed_source_columns(src, names)
}

/// The source columns `names`, typed by their `data_type` in the source
/// backend; `None` when one has none.
fn typed_source_columns(src: &BackendConfig, names: Vec<&str>) -> Option<Vec<MappedColumn>> {
    names
        .into_iter()
        .map(|name| {
            let c = src.columns.iter().find(|c| c.name == name)?;
            let ty = crate::types::ColumnType::parse(
                c.data_type.as_deref()?,
                c.precision,
                c.scale,
                c.length,
            )?;
            Some(MappedColumn {
                spec: crate::types::ColumnSpec {
                    name: name.to_string(),
                    data_type: ty,
                    unique: false,
                    nullable: true,
                },
                dest: name.to_string(),
                source: name.to_string(),
                source_ref: ColumnRef::bare(name),
                data_type: ty.to_string(),
                unique: false,
                hash_column: false,
                stored_hash: StoredHash::No,
                data_type_from: None,
                expr: None,
            })
        })
        .collect()
}

/// The group keys strategy `s`'s `delta_partitions` name: a group_by
/// column, the one source column a group_by expression reads
/// (`order_date` for `CAST(order_date AS DATE)`), or a destination virtual
/// column whose `expr` names a group_by column (`order_date: expr: date`).
fn delta_keys(
    si: usize,
    s: &StrategyConfig,
    keys: &[AggregateColumn],
    dst: &BackendConfig,
    problems: &mut Problems,
) -> Vec<usize> {
    let mut out = Vec::new();
    for (k, d) in s.delta_partitions.iter().enumerate() {
        let name = d.column.as_str();
        let by_virtual = dst
            .columns
            .iter()
            .find(|c| c.name == name && c.is_virtual == Some(true))
            .and_then(|c| c.expr.as_deref());
        let found = keys.iter().position(|key| {
            key.dest == name
                || (key.reads.len() == 1 && key.reads[0] == name)
                || by_virtual == Some(key.dest.as_str())
        });
        match found {
            Some(key) if !out.contains(&key) => out.push(key),
            Some(_) => {}
            None => {
                let names: Vec<String> = keys
                    .iter()
                    .flat_map(|k| {
                        std::iter::once(k.dest.clone()).chain(
                            (k.reads.len() == 1 && k.reads[0] != k.dest)
                                .then(|| k.reads[0].clone()),
                        )
                    })
                    .collect();
                problems.push(
                    format!("strategies[{si}].delta_partitions[{k}].column"),
                    format!(
                        "delta partition column \"{name}\" is not a group_by column nor the one column a group_by expression reads: delta partitions name the aggregate keys a changed row touches; use one of: {}",
                        names.join(", ")
                    ),
                );
            }
        }
    }
    out
}
