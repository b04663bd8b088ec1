//! The one internal model both config forms normalise into, and the one
//! validation pass that builds it ([`Pipeline::from_file_with_catalog`]):
//! each form's tables and columns (`simple_form`, `stage_form`), then the
//! strategies (`strategy`) and their partitions (`partitioning`).

mod aggregate;
mod columns;
mod file;
mod names;
mod partitioning;
mod simple_form;
mod stage_form;
mod strategy;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::column_ref::ColumnRef;
use crate::config::PipelineFile;
use crate::connection::ConnectorTypes;
use crate::datastores::{Datastore, Datastores};
use crate::error::{PlannerError, Problem, Result};
use crate::partition::PartitionDimension;
use crate::sql_expr::SqlExpr;
use crate::types::{ColumnSpec, ColumnType};

pub use aggregate::{
    Aggregate, AggregateColumn, AggregateEngine, GroupedForm, GroupedRead, KeyRange,
    AGGREGATE_FUNCTIONS, HASHES_IN_SQL,
};
pub use file::CatalogRequest;
pub use names::{column_ref_parts, quote_ident};
pub use tables::MAX_CONDITION_BYTES;

use aggregate::{sync_type, SyncType};
use partitioning::simple_partitioning;
use simple_form::normalize_simple;
use stage_form::normalize_staged;
use strategy::normalize_strategy;
use tables::check_condition_bytes;

/// A table (possibly joined with others) in a datastore.
#[derive(Debug, Clone, Serialize)]
pub struct TableRef {
    pub datastore: Datastore,
    pub schema: Option<String>,
    pub table: String,
    pub alias: Option<String>,
    pub joins: Vec<Join>,
    /// Conditions, ANDed; each parsed as one expression, so none can reach
    /// outside the parentheses it is rendered in.
    pub filters: Vec<SqlExpr>,
    /// An aggregate sync's source: read as the groups of its rows (or the
    /// rows of those groups), not row by row.
    #[serde(skip)]
    pub grouped: Option<GroupedRead>,
}

impl TableRef {
    /// `"schema"."table"` for messages.
    pub fn display_name(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.table)),
            None => quote_ident(&self.table),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Join {
    pub schema: Option<String>,
    pub table: String,
    pub alias: Option<String>,
    pub on: SqlExpr,
    /// `INNER`, `LEFT`, `RIGHT` or `FULL`.
    pub kind: String,
}

/// One destination column and where its value comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MappedColumn {
    #[serde(skip)]
    pub spec: ColumnSpec,
    pub dest: String,
    /// The source reference as written (`o.id`).
    pub source: String,
    /// The source column it reads (for a `StoredHash::Compute` column, its
    /// own name: the value is computed, not read).
    pub source_ref: ColumnRef,
    pub data_type: String,
    pub unique: bool,
    pub hash_column: bool,
    /// Whether this column holds the row hash (a destination `hash_key: true`
    /// column), and how a reader gets it. Never itself a hash column.
    #[serde(default, skip_serializing_if = "StoredHash::is_no")]
    pub stored_hash: StoredHash,
    /// Where `data_type` came from when the pipeline does not give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type_from: Option<DataTypeFrom>,
    /// A transform: the SQL expression (over the source's columns) the
    /// source computes the value with, instead of reading `source_ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<crate::SqlExpr>,
}

/// Where a column's type came from, when not from its `data_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataTypeFrom {
    /// The source table's catalog declares it (a backend column written
    /// without `data_type`, as in the spec's audit-columns example).
    SourceCatalog,
}

/// The types a source table's catalog declares, by column name, for the
/// destination columns written without `data_type`; or why a column's
/// type cannot be taken from it.
#[derive(Debug, Clone, Default)]
pub struct SourceCatalog {
    pub types: HashMap<String, std::result::Result<ColumnType, String>>,
}

/// The role of a column holding the row hash of the row's `hash_column`
/// columns (`hash_key: true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredHash {
    /// An ordinary column.
    #[default]
    No,
    /// Read from a source: the value is the row hash computed from the row
    /// (`rowhash::hash_rows`), not read from the table.
    Compute,
    /// Read back from the destination, where it is stored: checksums and row
    /// hashes use the stored value instead of hashing the row.
    Read,
    /// An aggregate's group checksum: the wrapping sum of the row hashes of
    /// the group's source rows (over the columns the group-by reads),
    /// computed with the group. A partition's groups then sum to the
    /// checksum of its source rows, which is what a hash run compares.
    #[serde(rename = "group_sum")]
    GroupSum,
}

impl StoredHash {
    pub fn is_no(&self) -> bool {
        *self == StoredHash::No
    }

    pub fn is_compute(&self) -> bool {
        *self == StoredHash::Compute
    }
}

impl MappedColumn {
    /// A column read from the source column of the same name, declared
    /// `ty`, as a pipeline mapping a table one to one has it: nullable
    /// unless it is a key, no stored hash.
    pub fn same_name(name: &str, ty: ColumnType, unique: bool, hash_column: bool) -> MappedColumn {
        MappedColumn {
            spec: ColumnSpec {
                name: name.into(),
                data_type: ty,
                unique,
                nullable: !unique,
            },
            dest: name.into(),
            source: name.into(),
            source_ref: crate::ColumnRef::bare(name),
            data_type: ty.to_string(),
            unique,
            hash_column,
            stored_hash: StoredHash::No,
            data_type_from: None,
            expr: None,
        }
    }

    /// The source column's own name, unquoted and without its table: `id`
    /// for `o.id`, `Order Id` for `o."Order Id"`.
    pub fn source_column(&self) -> String {
        self.source_ref.column.clone()
    }

    /// Whether `name`, a pipeline's partition or cursor column, means this
    /// column: its dest name, its source as written, or the source column's
    /// own name, bare or quoted (`Order Id`, `"Order Id"`).
    pub fn is_named(&self, name: &str) -> bool {
        let own = self.source_column();
        self.dest == name
            || self.source == name
            || own == name
            || column_ref_parts(name).is_some_and(|p| p.len() == 1 && p[0] == own)
    }

    /// The source as written, for a message: in double quotes, unless it is
    /// written with its own.
    pub fn source_for_message(&self) -> String {
        if self.source.contains('"') {
            self.source.clone()
        } else {
            format!("\"{}\"", self.source)
        }
    }

    /// Whether a database's message about a missing column `reported`
    /// (`x` or `o.x`, unquoted) is about this column's source.
    pub fn is_source_reported_as(&self, reported: &str) -> bool {
        let own = self.source_column();
        self.source == reported
            || own == reported
            || reported
                .strip_suffix(own.as_str())
                .is_some_and(|q| q.ends_with('.'))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    Full,
    Delta,
    Hash,
}

impl StrategyKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StrategyKind::Full => "full",
            StrategyKind::Delta => "delta",
            StrategyKind::Hash => "hash",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Strategy {
    pub name: String,
    pub kind: StrategyKind,
    #[serde(skip)]
    pub delta: Option<DeltaSpec>,
    pub enabled: bool,
    pub cron: Option<String>,
    /// Rows per read from the source.
    pub page_size: usize,
    #[serde(skip)]
    pub primary: Vec<PartitionDimension>,
    /// Hash: finer cuts of a primary partition whose checksums differ.
    #[serde(skip)]
    pub secondary: Vec<PartitionDimension>,
    /// Position in `strategies`, for error paths.
    pub index: usize,
    /// Hash: delete destination rows missing from the source.
    #[serde(skip)]
    pub delete_missing: bool,
    /// Rows per batch handed to the destination, when the strategy says
    /// (`pipeline_config.batch_size`); else the pipeline's.
    #[serde(skip)]
    pub batch_rows: Option<usize>,
    /// Fields that parse but that this strategy cannot honour yet, by path:
    /// planning it is refused with the first.
    #[serde(skip)]
    pub(crate) unsupported: Vec<String>,
}

/// How a delta strategy finds changed rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSpec {
    /// The cursor column; its step cuts the window (`Step::Single`: one range).
    pub cursor: PartitionDimension,
    /// Re-read this far behind the watermark (cursor units: values or
    /// microseconds) for rows committed late.
    pub lookback: i64,
    /// Read rows whose cursor is NULL on every run (they can never pass a
    /// watermark), rather than skipping them.
    pub include_nulls: bool,
    /// An aggregate sync: each source row's group is remembered, so a row
    /// that moved to another group re-computes the one it left.
    pub track_moves: bool,
}

/// A pipeline, normalised and validated.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub source: TableRef,
    pub destination: TableRef,
    pub columns: Vec<MappedColumn>,
    pub strategies: Vec<Strategy>,
    pub max_concurrent_partitions: usize,
    /// Rows per batch handed to the destination.
    pub batch_rows: usize,
    /// From `partition_column` + `partition_step`: used by strategies that
    /// declare no `primary_partitions`.
    #[serde(skip)]
    pub default_partitioning: Vec<PartitionDimension>,
    /// `sync_type: aggregate`: the group-by whose groups the destination
    /// holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
}

impl Pipeline {
    pub fn dest_columns(&self) -> Vec<ColumnSpec> {
        self.columns.iter().map(|c| c.spec.clone()).collect()
    }
    /// The columns a source is opened with: the destination's, or for an
    /// aggregate whose groups DataFusion computes, the source rows' own.
    pub fn read_columns(&self) -> &[MappedColumn] {
        match (&self.source.grouped, &self.aggregate) {
            (Some(g), Some(a)) if g.form == GroupedForm::Rows => {
                a.row_columns.as_deref().unwrap_or(&self.columns)
            }
            _ => &self.columns,
        }
    }

    pub fn unique_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.unique)
            .map(|c| c.dest.as_str())
            .collect()
    }
}

pub const DEFAULT_PAGE_SIZE: usize = 50_000;

/// The sources whose SQL computes a column's transform (`expr`).
const TRANSFORMS_IN_SQL: [&str; 3] = ["postgres", "sqlite", "mysql"];
pub const DEFAULT_BATCH_ROWS: usize = 50_000;

/// Collects problems so validation can report them all at once.
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn is_valid_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Pipeline {
    /// Reads, parses and validates a pipeline file against its datastores.
    pub fn load(file: &Path, datastores: &Datastores) -> Result<Pipeline> {
        let raw = PipelineFile::read(file)?;
        Pipeline::from_file(file, raw, datastores)
    }

    /// Reads the pipeline `file` first (its own YAML errors come before any
    /// about datastores), then finds its datastores file (`explicit`, else
    /// beside it or above) and resolves the datastores it names only.
    pub fn load_resolving(
        file: &Path,
        explicit: Option<&Path>,
        types: &ConnectorTypes,
    ) -> Result<Pipeline> {
        let (raw, datastores) = PipelineFile::read_resolving(file, explicit, types)?;
        Pipeline::from_file(file, raw, &datastores)
    }

    pub fn from_file(file: &Path, raw: PipelineFile, datastores: &Datastores) -> Result<Pipeline> {
        Pipeline::from_file_with_catalog(file, raw, datastores, None)
    }

    /// [`Pipeline::from_file`], with the types of columns written without
    /// `data_type` taken from `catalog` (see [`PipelineFile::catalog_request`]).
    pub fn from_file_with_catalog(
        file: &Path,
        raw: PipelineFile,
        datastores: &Datastores,
        catalog: Option<&SourceCatalog>,
    ) -> Result<Pipeline> {
        check_condition_bytes(file, &raw)?;
        let mut problems = Problems(Vec::new());
        if !is_valid_pipeline_name(&raw.name) {
            problems.push(
                "name",
                format!(
                    "\"{}\" is not a valid pipeline name: use letters, digits, '_' and '-' only",
                    raw.name
                ),
            );
        }
        if raw.max_concurrent_partitions == Some(0) {
            problems.push(
                "max_concurrent_partitions",
                "0 partitions at a time would write nothing: use 1 (one after another) or more",
            );
        }
        let simple = raw.source_provider.is_some() || raw.destination_provider.is_some();
        let staged = !raw.backends.is_empty();
        // Not returning early on a sync_type still to come: every other
        // problem of the file is reported with it.
        let sync = sync_type(&raw, &mut problems);
        let normalized = if simple && staged {
            problems.push(
                "backends",
                "use either source_provider/destination_provider/column_map or backends/stages, not both",
            );
            None
        } else if simple && sync == Some(SyncType::Aggregate) {
            problems.push(
                "sync_type",
                "an aggregate sync is written in the stage form: backends, and a data_fetch stage whose source lists the columns (with expr) and group_by",
            );
            None
        } else if simple {
            normalize_simple(file, &raw, datastores, &mut problems)
        } else if staged {
            let sync = sync.unwrap_or(SyncType::RowLevel);
            normalize_staged(file, &raw, sync, datastores, catalog, &mut problems)
        } else {
            problems.push(
                "source_provider",
                "the pipeline names no source: add source_provider and destination_provider (or backends)",
            );
            None
        };

        let mut strategies = Vec::new();
        let mut default_partitioning = Vec::new();
        if let Some((_, _, columns, aggregate)) = &normalized {
            default_partitioning = simple_partitioning(&raw, columns, &mut problems);
            let hash_algo = raw.hash_algo.as_deref();
            for (i, s) in raw.strategies.iter().enumerate() {
                if let Some(st) = normalize_strategy(
                    &default_partitioning,
                    i,
                    s,
                    columns,
                    hash_algo,
                    aggregate.is_some(),
                    &mut problems,
                ) {
                    if st.delta.as_ref().is_some_and(|d| d.track_moves)
                        && sync != Some(SyncType::Aggregate)
                    {
                        problems.push(
                            format!("strategies[{i}].track_moves"),
                            "track_moves is for sync_type: aggregate; a row-level delta writes each changed row under its own key, so no row is left behind where it was",
                        );
                    }
                    strategies.push(st);
                }
            }
            // An aggregate's delta_partitions are its keys (checked with
            // the group-by), not a field still to come.
            if let Some(a) = aggregate {
                for st in &mut strategies {
                    let field = format!("strategies[{}].delta_partitions", st.index);
                    st.unsupported.retain(|u| *u != field);
                    if st.kind == StrategyKind::Hash {
                        aggregate::key_dimensions(st, a, &mut problems);
                    }
                }
            }
            let mut names = HashSet::new();
            for (i, s) in raw.strategies.iter().enumerate() {
                if !names.insert(s.name.as_str()) {
                    problems.push(
                        format!("strategies[{i}].name"),
                        format!("strategy name \"{}\" is used twice", s.name),
                    );
                }
            }
        }

        if let Some((source, _, columns, _)) = &normalized {
            let kind = source.datastore.connection.kind();
            if !TRANSFORMS_IN_SQL.contains(&kind) {
                for c in columns.iter().filter(|c| c.expr.is_some()) {
                    problems.push(
                        "columns",
                        format!("not supported yet: column \"{}\" computed by an expression from a {kind} source (PostgreSQL, MySQL and SQLite sources compute it in their SQL); compute it before the data lands there", c.dest),
                    );
                }
            }
        }
        if let Some((source, _, _, Some(a))) = &normalized {
            let kind = source.datastore.connection.kind();
            if a.engine == AggregateEngine::Source
                && a.group_sum.is_some()
                && !HASHES_IN_SQL.contains(&kind)
            {
                problems.push(
                    "aggregate_engine",
                    format!("aggregate_engine: source cannot fill hash_key column \"{}\" from a {kind} source, which has no SQL for SyncHub's row hash: use aggregate_engine: datafusion (or auto)", a.group_sum.as_deref().unwrap_or_default()),
                );
            }
        }
        if !problems.0.is_empty() || sync.is_none() {
            return Err(PlannerError::Invalid {
                file: file.to_path_buf(),
                problems: problems.0,
            });
        }
        let (mut source, destination, columns, aggregate) =
            normalized.expect("no problems means normalized");
        if let Some(a) = &aggregate {
            let (engine, _) = a.resolved_engine(source.datastore.connection.kind());
            source.grouped = Some(GroupedRead {
                aggregate: a.clone(),
                form: match engine {
                    AggregateEngine::Datafusion => GroupedForm::Rows,
                    _ => GroupedForm::Groups,
                },
                row_hash_sql: None,
            });
        }
        let batch_rows = raw
            .stages
            .iter()
            .filter(|s| s.kind == "batcher" && s.enabled)
            .find_map(|s| s.config.as_ref().and_then(|c| c.target_batch_size))
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_BATCH_ROWS)
            .max(1);
        Ok(Pipeline {
            file: file.to_path_buf(),
            name: raw.name.clone(),
            description: raw.description.clone(),
            enabled: raw.enabled,
            source,
            destination,
            columns,
            strategies,
            max_concurrent_partitions: raw.max_concurrent_partitions.unwrap_or(1) as usize,
            batch_rows,
            default_partitioning,
            aggregate,
        })
    }
}

type Normalized = (TableRef, TableRef, Vec<MappedColumn>, Option<Aggregate>);
