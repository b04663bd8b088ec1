//! The one internal model both config forms normalise into.

use std::collections::{HashMap, HashSet};

use crate::connection::ConnectorTypes;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{
    BackendColumn, BackendConfig, ColumnMapEntry, DataBackend, DeltaConfig, JoinConfig,
    PartitionConfig, PipelineFile, StrategyConfig, StrategyType,
};
use crate::datastores::{Datastore, Datastores};
use crate::error::{PlannerError, Problem, Result};
use crate::partition::{PartitionDimension, Step};
use crate::sql_expr::{SqlDialect, SqlExpr};
use crate::types::{ColumnSpec, ColumnType, PartitionKind, DATA_TYPE_NAMES};
use crate::yaml;

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
#[derive(Debug, Clone, Serialize)]
pub struct MappedColumn {
    #[serde(skip)]
    pub spec: ColumnSpec,
    pub dest: String,
    /// The source reference as written (`o.id`).
    pub source: String,
    /// The SQL that reads it, identifiers quoted (`"o"."id"`).
    pub source_sql: String,
    pub data_type: String,
    pub unique: bool,
    pub hash_column: bool,
    /// Whether this column holds the row hash (a destination `hash_key: true`
    /// column), and how a reader gets it. Never itself a hash column.
    #[serde(skip_serializing_if = "StoredHash::is_no")]
    pub stored_hash: StoredHash,
    /// Where `data_type` came from when the pipeline does not give it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type_from: Option<DataTypeFrom>,
}

/// Where a column's type came from, when not from its `data_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
}

impl StoredHash {
    pub fn is_no(&self) -> bool {
        *self == StoredHash::No
    }
}

impl MappedColumn {
    /// The source column's own name, unquoted and without its table: `id`
    /// for `o.id`, `Order Id` for `o."Order Id"`.
    pub fn source_column(&self) -> String {
        column_ref_parts(&self.source)
            .and_then(|mut parts| parts.pop())
            .unwrap_or_else(|| self.source.clone())
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

/// What a source selects for a `StoredHash::Compute` column of type `ty`: a
/// typed NULL (valid in PostgreSQL and SQLite), replaced by the row hash once
/// decoded (as 16 lowercase hex digits in a text column).
pub fn computed_hash_sql(ty: ColumnType) -> &'static str {
    if ty == ColumnType::Int64 {
        "CAST(NULL AS bigint)"
    } else {
        "CAST(NULL AS text)"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

impl Pipeline {
    pub fn dest_columns(&self) -> Vec<ColumnSpec> {
        self.columns.iter().map(|c| c.spec.clone()).collect()
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
pub const DEFAULT_BATCH_ROWS: usize = 50_000;

/// ANSI identifier quoting, understood by PostgreSQL and SQLite.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

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

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !s.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// A source column reference split into its parts, unquoted: `id`, `o.id`,
/// and, between SQL's double quotes, names that are not plain identifiers:
/// `"Order Id"`, `o."Order Id"` (a `"` inside written `""`). `None` when `s`
/// is not one or two such parts.
pub fn column_ref_parts(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let (part, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let mut name = String::new();
                let mut chars = quoted.char_indices().peekable();
                let end = loop {
                    match chars.next()? {
                        (_, '"') if chars.peek().is_some_and(|&(_, c)| c == '"') => {
                            chars.next();
                            name.push('"');
                        }
                        (i, '"') => break i + 1,
                        (_, c) => name.push(c),
                    }
                };
                (name, &quoted[end..])
            }
            None => {
                let end = rest.find('.').unwrap_or(rest.len());
                let word = &rest[..end];
                if !is_identifier(word) {
                    return None;
                }
                (word.to_string(), &rest[end..])
            }
        };
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        if after.is_empty() {
            break;
        }
        rest = after.strip_prefix('.')?;
    }
    (parts.len() <= 2).then_some(parts)
}

/// `o.id` → `"o"."id"`, `o."Order Id"` → `"o"."Order Id"`; `None` when `s`
/// is not a (qualified) column name.
pub fn column_ref_sql(s: &str) -> Option<String> {
    Some(
        column_ref_parts(s)?
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Why `s` is not a column reference, and how to write it as one: a name
/// that is not an identifier goes in SQL's double quotes, which YAML needs
/// inside single ones.
fn not_a_column_name(s: &str) -> String {
    let quoted = match s.split_once('.') {
        Some((table, column)) if is_identifier(table) => format!("{table}.{}", quote_ident(column)),
        _ => quote_ident(s),
    };
    format!(
        "\"{s}\" is not a column name; write a column (id) or a qualified column (o.id), and put a name with spaces or other characters in double quotes (in YAML inside single ones: '{quoted}')"
    )
}

/// The label of a partition dimension over a column that is not mapped:
/// its parts joined by `_` (`o.day` → `o_day`).
fn unmapped_dimension_name(column: &str) -> String {
    column_ref_parts(column).map_or_else(|| column.replace('.', "_"), |p| p.join("_"))
}

fn is_valid_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_type(
    problems: &mut Problems,
    path: &str,
    name: &str,
    precision: Option<u8>,
    scale: Option<i8>,
    length: Option<u32>,
) -> ColumnType {
    match ColumnType::parse(name, precision, scale, length) {
        Some(ColumnType::Decimal { precision, scale })
            if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision =>
        {
            problems.push(
                format!("{path}.precision"),
                format!(
                    "decimal({precision},{scale}) is out of range: precision must be 1..=38 and scale 0..=precision"
                ),
            );
            ColumnType::Text
        }
        Some(t) => t,
        None => {
            let hint = match yaml::closest(name, DATA_TYPE_NAMES) {
                Some(c) => format!("did you mean \"{c}\"?"),
                None => format!("valid types: {}", DATA_TYPE_NAMES.join(", ")),
            };
            problems.push(
                format!("{path}.data_type"),
                format!("unknown data_type \"{name}\"; {hint}"),
            );
            ColumnType::Text
        }
    }
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
        let row_level = row_level(&raw, &mut problems);
        let normalized = if simple && staged {
            problems.push(
                "backends",
                "use either source_provider/destination_provider/column_map or backends/stages, not both",
            );
            None
        } else if simple {
            normalize_simple(file, &raw, datastores, &mut problems)
        } else if staged {
            normalize_staged(file, &raw, datastores, catalog, &mut problems)
        } else {
            problems.push(
                "source_provider",
                "the pipeline names no source: add source_provider and destination_provider (or backends)",
            );
            None
        };

        let mut strategies = Vec::new();
        let mut default_partitioning = Vec::new();
        if let Some((_, _, columns)) = &normalized {
            default_partitioning = simple_partitioning(&raw, columns, &mut problems);
            let hash_algo = raw.hash_algo.as_deref();
            for (i, s) in raw.strategies.iter().enumerate() {
                if let Some(st) = normalize_strategy(
                    &default_partitioning,
                    i,
                    s,
                    columns,
                    hash_algo,
                    &mut problems,
                ) {
                    strategies.push(st);
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

        if !problems.0.is_empty() || !row_level {
            return Err(PlannerError::Invalid {
                file: file.to_path_buf(),
                problems: problems.0,
            });
        }
        let (source, destination, columns) = normalized.expect("no problems means normalized");
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
        })
    }
}

impl PipelineFile {
    pub fn read(file: &Path) -> Result<PipelineFile> {
        let text = yaml::read_file(file)?;
        yaml::parse(file, &text)
    }

    /// Reads the pipeline `file` first (its own YAML errors come before any
    /// about datastores), then finds its datastores file (`explicit`, else
    /// beside it or above) and resolves the datastores it names only.
    pub fn read_resolving(
        file: &Path,
        explicit: Option<&Path>,
        types: &ConnectorTypes,
    ) -> Result<(PipelineFile, Datastores)> {
        let raw = PipelineFile::read(file)?;
        let ds_file = Datastores::locate(file, explicit)?;
        let datastores = Datastores::load_only(&ds_file, types, &raw.datastore_names())?;
        Ok((raw, datastores))
    }

    /// What must be read from the source's catalog: the destination columns
    /// of the stage form written without `data_type` (the spec's
    /// audit-columns example), with the source's datastore and tables.
    /// `None` when every column has its type.
    pub fn catalog_request(&self) -> Option<CatalogRequest> {
        let (_, stage) = endpoint_stage(self)?;
        let backend = |e: &Option<crate::config::StageEndpoint>| {
            let name = &e.as_ref()?.name;
            self.backends.iter().find(|b| &b.name == name)
        };
        let (src, dst) = (backend(&stage.source)?, backend(&stage.destination)?);
        let columns: Vec<String> = dst
            .columns
            .iter()
            .filter(|c| {
                c.data_type.is_none() && c.hash_key != Some(true) && c.is_virtual != Some(true)
            })
            .map(|c| c.name.clone())
            .collect();
        if columns.is_empty() {
            return None;
        }
        let tables = std::iter::once((src.schema.clone(), src.table.clone()))
            .chain(src.join.iter().map(|j| (j.schema.clone(), j.table.clone())))
            .collect();
        Some(CatalogRequest {
            datastore_name: src.datastore_name.clone(),
            tables,
            columns,
        })
    }

    /// Every datastore the pipeline names (providers, backends, enrichment
    /// sources): the ones its datastores file must resolve.
    pub fn datastore_names(&self) -> std::collections::BTreeSet<String> {
        let providers = [&self.source_provider, &self.destination_provider]
            .into_iter()
            .flatten()
            .map(|p| p.data_backend.datastore_name.clone());
        let backends = self.backends.iter().map(|b| b.datastore_name.clone());
        let dimensions = self
            .enrichment
            .iter()
            .flat_map(|e| &e.dimensions)
            .map(|d| d.source.config.datastore_name.clone());
        providers.chain(backends).chain(dimensions).collect()
    }
}

/// Columns whose types a source's catalog must give, and where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRequest {
    pub datastore_name: String,
    /// (schema, table): the source's main table, then its joined tables.
    pub tables: Vec<(Option<String>, String)>,
    pub columns: Vec<String>,
}

type Normalized = (TableRef, TableRef, Vec<MappedColumn>);

fn table_ref(
    file: &Path,
    path: &str,
    backend: &DataBackend,
    datastores: &Datastores,
    problems: &mut Problems,
) -> Option<TableRef> {
    let ds = match datastores.get(
        file,
        &format!("{path}.datastore_name"),
        &backend.datastore_name,
    ) {
        Ok(ds) => ds.clone(),
        Err(p) => {
            problems.0.push(p);
            return None;
        }
    };
    let same_kind = backend.kind.eq_ignore_ascii_case(ds.kind())
        || (backend.kind.eq_ignore_ascii_case("postgresql") && ds.kind() == "postgres");
    if !same_kind {
        problems.push(
            format!("{path}.type"),
            format!(
                "type is \"{}\" but datastore \"{}\" is {}",
                backend.kind,
                ds.name(),
                ds.kind()
            ),
        );
    }
    if backend.supports_update == Some(false) {
        problems.push(
            format!("{path}.supports_update"),
            "not supported yet: supports_update: false (insert-only destinations)",
        );
    }
    let dialect = SqlDialect::of(&ds);
    let joins = backend
        .join
        .iter()
        .enumerate()
        .filter_map(|(i, j)| join(path, i, j, dialect, problems))
        .collect();
    let filters = backend
        .filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| condition(&format!("{path}.filters[{i}]"), f, dialect, problems))
        .collect();
    Some(TableRef {
        schema: backend
            .schema
            .clone()
            .or_else(|| ds.default_schema().map(str::to_string)),
        datastore: ds,
        table: backend.table.clone(),
        alias: backend.alias.clone(),
        joins,
        filters,
    })
}

/// SQL text of all of a pipeline's filters and join conditions together.
/// A parsed expression takes up to ~125 times its text (each `1,` of an
/// `IN` list is a tree node of a few hundred bytes), so this bounds them at
/// a few MiB however large the file; 64 KiB is some 10,000 listed values.
pub const MAX_CONDITION_BYTES: usize = 64 * 1024;

/// Refuses a pipeline whose conditions exceed `MAX_CONDITION_BYTES`, at
/// the first one past it, before any is parsed.
fn check_condition_bytes(file: &Path, raw: &PipelineFile) -> Result<()> {
    let backends = [
        (
            "source_provider.data_backend".to_string(),
            raw.source_provider
                .as_ref()
                .map(|p| (&p.data_backend.join, &p.data_backend.filters)),
        ),
        (
            "destination_provider.data_backend".to_string(),
            raw.destination_provider
                .as_ref()
                .map(|p| (&p.data_backend.join, &p.data_backend.filters)),
        ),
    ]
    .into_iter()
    .filter_map(|(path, b)| b.map(|b| (path, b)))
    .chain(
        raw.backends
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("backends[{i}]"), (&b.join, &b.filters))),
    );
    let mut total = 0usize;
    for (path, (joins, filters)) in backends {
        let conditions = joins
            .iter()
            .enumerate()
            .map(|(i, j)| (format!("{path}.join[{i}].on"), j.on.len()))
            .chain(
                filters
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (format!("{path}.filters[{i}]"), f.len())),
            );
        for (field, len) in conditions {
            total = total.saturating_add(len);
            if total > MAX_CONDITION_BYTES {
                return Err(PlannerError::invalid(
                    file,
                    field,
                    format!(
                        "the pipeline's filters and join conditions come to more than {} KiB of SQL; put long value lists in a table and join it",
                        MAX_CONDITION_BYTES / 1024
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A filter or join condition parsed as one SQL expression, or a problem
/// naming its field and the parser's reason.
fn condition(
    path: &str,
    text: &str,
    dialect: SqlDialect,
    problems: &mut Problems,
) -> Option<SqlExpr> {
    match SqlExpr::parse(text, dialect) {
        Ok(e) => Some(e),
        Err(reason) => {
            problems.push(path, format!("not a single SQL condition: {reason}"));
            None
        }
    }
}

fn join(
    path: &str,
    i: usize,
    j: &JoinConfig,
    dialect: SqlDialect,
    problems: &mut Problems,
) -> Option<Join> {
    let on = condition(&format!("{path}.join[{i}].on"), &j.on, dialect, problems);
    let kind = match j
        .kind
        .as_deref()
        .unwrap_or("inner")
        .to_ascii_lowercase()
        .as_str()
    {
        "inner" => "INNER",
        "left" => "LEFT",
        "right" => "RIGHT",
        "full" => "FULL",
        other => {
            problems.push(
                format!("{path}.join[{i}].type"),
                format!("unknown join type \"{other}\"; use inner, left, right or full"),
            );
            return None;
        }
    };
    Some(Join {
        schema: j.schema.clone(),
        table: j.table.clone(),
        alias: j.alias.clone(),
        on: on?,
        kind: kind.to_string(),
    })
}

fn normalize_simple(
    file: &Path,
    raw: &PipelineFile,
    datastores: &Datastores,
    problems: &mut Problems,
) -> Option<Normalized> {
    let source = match &raw.source_provider {
        Some(p) => table_ref(
            file,
            "source_provider.data_backend",
            &p.data_backend,
            datastores,
            problems,
        ),
        None => {
            problems.push(
                "source_provider",
                "missing: the pipeline needs a source_provider",
            );
            None
        }
    };
    let destination = match &raw.destination_provider {
        Some(p) => table_ref(
            file,
            "destination_provider.data_backend",
            &p.data_backend,
            datastores,
            problems,
        ),
        None => {
            problems.push(
                "destination_provider",
                "missing: the pipeline needs a destination_provider",
            );
            None
        }
    };
    if raw.column_map.is_empty() {
        problems.push(
            "column_map",
            "missing: list the columns to sync in column_map",
        );
    }
    let mut columns = Vec::new();
    for (i, c) in raw.column_map.iter().enumerate() {
        if let Some(col) = simple_column(i, c, problems) {
            columns.push(col);
        }
    }
    if let Some(e) = &raw.enrichment {
        if e.enabled {
            problems.push("enrichment", "not supported yet: enrichment");
        }
    }
    let names: Vec<&str> = raw.column_map.iter().map(|c| c.dest.as_str()).collect();
    check_columns(&names, &columns, "column_map", "dest", problems);
    Some((source?, destination?, columns))
}

fn simple_column(i: usize, c: &ColumnMapEntry, problems: &mut Problems) -> Option<MappedColumn> {
    let path = format!("column_map[{i}]");
    let ty = parse_type(
        problems,
        &path,
        &c.data_type,
        c.precision,
        c.scale,
        c.length,
    );
    let mut unique = false;
    for (r, role) in c.roles.iter().enumerate() {
        match role.as_str() {
            "unique_column" => unique = true,
            "partition_column" => {}
            other => {
                let hint = yaml::closest(other, &["unique_column", "partition_column"])
                    .map(|s| format!("did you mean \"{s}\"?"))
                    .unwrap_or_else(|| "valid roles: unique_column, partition_column".to_string());
                problems.push(
                    format!("{path}.roles[{r}]"),
                    format!("unknown role \"{other}\"; {hint}"),
                );
            }
        }
    }
    if let Some(t) = &c.transform {
        problems.push(format!("{path}.transform"), transform_message(t));
    }
    let Some(source_sql) = column_ref_sql(&c.source) else {
        problems.push(format!("{path}.source"), not_a_column_name(&c.source));
        return None;
    };
    Some(MappedColumn {
        spec: ColumnSpec {
            name: c.dest.clone(),
            data_type: ty,
            unique,
            nullable: !unique,
        },
        dest: c.dest.clone(),
        source: c.source.clone(),
        source_sql,
        data_type: ty.to_string(),
        unique,
        hash_column: c.hash_column.unwrap_or(true),
        stored_hash: StoredHash::No,
        data_type_from: None,
    })
}

fn transform_message(t: &str) -> String {
    if t.trim_start().starts_with("lambda") {
        "not supported yet: transform (Python lambdas never will be; SQL transforms such as \"round(total_amount * 1.1, 2)\" are planned): remove it and compute the value in a view over the source table".to_string()
    } else {
        "not supported yet: transform: remove it and compute the value in a view over the source table".to_string()
    }
}

/// `names` are the destination names as written, so paths count every entry,
/// valid or not; `field` is what the entry calls its name (`dest` or `name`).
fn check_columns(
    names: &[&str],
    columns: &[MappedColumn],
    path: &str,
    field: &str,
    problems: &mut Problems,
) {
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        if !seen.insert(*name) {
            problems.push(
                format!("{path}[{i}].{field}"),
                format!(
                    "destination column \"{name}\" is mapped twice; give each column a distinct {field}"
                ),
            );
        }
    }
    if !columns.is_empty() && !columns.iter().any(|c| c.unique) {
        problems.push(
            path,
            "no unique column: upserts need a key; add roles: [\"unique_column\"] (or unique_column: true) to the key column",
        );
    }
}

/// Whether the pipeline is a row-level sync, the one kind there is today
/// (in either config form); anything else is a problem.
fn row_level(raw: &PipelineFile, problems: &mut Problems) -> bool {
    match raw.sync_type.as_deref() {
        None | Some("row-level") | Some("row_level") => true,
        Some("aggregate") => {
            problems.push("sync_type", "not supported yet: sync_type: aggregate");
            false
        }
        Some(other) => {
            problems.push(
                "sync_type",
                format!("unknown sync_type \"{other}\"; use row-level or aggregate"),
            );
            false
        }
    }
}

/// The stage saying which backend is the source and which the
/// destination: data_fetch, else populate, else the first naming a source.
pub(crate) fn endpoint_stage(raw: &PipelineFile) -> Option<(usize, &crate::config::StageConfig)> {
    let find_stage = |kind: &str| {
        raw.stages
            .iter()
            .enumerate()
            .find(|(_, s)| s.kind == kind && s.enabled)
    };
    find_stage("data_fetch")
        .or_else(|| find_stage("populate"))
        .or_else(|| {
            raw.stages
                .iter()
                .enumerate()
                .find(|(_, s)| s.source.is_some())
        })
}

fn normalize_staged(
    file: &Path,
    raw: &PipelineFile,
    datastores: &Datastores,
    catalog: Option<&SourceCatalog>,
    problems: &mut Problems,
) -> Option<Normalized> {
    for (i, s) in raw.stages.iter().enumerate() {
        if s.applicable_on.is_some() {
            problems.push(
                format!("stages[{i}].applicable_on"),
                format!("not supported yet: stages[{i}].applicable_on (every stage applies to every strategy)"),
            );
        }
        match s.kind.as_str() {
            // Core stages run in every sync: switching one off would need a
            // pipeline that, say, reads but never writes.
            "partition" | "change_detection" | "data_fetch" | "batcher" | "populate"
                if !s.enabled =>
            {
                problems.push(
                    format!("stages[{i}].enabled"),
                    format!("not supported yet: stages[{i}].enabled: false on a {} stage; remove the key to run the stage", s.kind),
                );
            }
            "partition" | "change_detection" | "data_fetch" | "batcher" | "populate" => {}
            "dedup" | "transform" | "enrich" if s.enabled => {
                problems.push(format!("stages[{i}]"), format!("not supported yet: stage type {}", s.kind));
            }
            "dedup" | "transform" | "enrich" => {}
            other => problems.push(
                format!("stages[{i}].type"),
                format!("unknown stage type \"{other}\"; valid: partition, change_detection, data_fetch, transform, enrich, dedup, batcher, populate"),
            ),
        }
    }
    let backend_named =
        |name: &str, path: &str, problems: &mut Problems| -> Option<(usize, &BackendConfig)> {
            let found = raw
                .backends
                .iter()
                .enumerate()
                .find(|(_, b)| b.name == name);
            if found.is_none() {
                let names: Vec<&str> = raw.backends.iter().map(|b| b.name.as_str()).collect();
                problems.push(
                    path,
                    format!("no backend named \"{name}\"; defined: {}", names.join(", ")),
                );
            }
            found
        };
    let endpoints = endpoint_stage(raw);
    let (src_name, dst_name, fetch_columns) = match endpoints {
        Some((i, s)) => {
            let src = s.source.as_ref().map(|e| e.name.clone());
            let dst = s.destination.as_ref().map(|e| e.name.clone());
            if s.source.as_ref().is_some_and(|e| !e.group_by.is_empty()) {
                problems.push(
                    format!("stages[{i}].source.group_by"),
                    "not supported yet: group_by (aggregate syncs)",
                );
            }
            (
                src,
                dst,
                s.source
                    .as_ref()
                    .map(|e| e.columns.clone())
                    .unwrap_or_default(),
            )
        }
        None => (None, None, Vec::new()),
    };
    let src_name = src_name.or_else(|| raw.backends.first().map(|b| b.name.clone()));
    let dst_name = dst_name.or_else(|| raw.backends.get(1).map(|b| b.name.clone()));
    let (Some(src_name), Some(dst_name)) = (src_name, dst_name) else {
        problems.push("backends", "need a source and a destination backend");
        return None;
    };
    let (si, src) = backend_named(&src_name, "stages", problems)?;
    let (di, dst) = backend_named(&dst_name, "stages", problems)?;
    let as_backend = |b: &BackendConfig| DataBackend {
        kind: b.kind.clone(),
        datastore_name: b.datastore_name.clone(),
        table: b.table.clone(),
        schema: b.schema.clone(),
        alias: b.alias.clone(),
        join: b.join.clone(),
        filters: b.filters.clone(),
        supports_update: b.supports_update,
    };
    let source = table_ref(
        file,
        &format!("backends[{si}]"),
        &as_backend(src),
        datastores,
        problems,
    );
    let destination = table_ref(
        file,
        &format!("backends[{di}]"),
        &as_backend(dst),
        datastores,
        problems,
    );
    let mut columns = Vec::new();
    for (ci, dc) in dst.columns.iter().enumerate() {
        let path = format!("backends[{di}].columns[{ci}]");
        if let Some(col) = staged_column(&path, dc, src, &fetch_columns, catalog, problems) {
            columns.push(col);
        }
    }
    // A source `virtual: true` + `hash_key: true` column is the row hash,
    // computed by SyncHub and never read from the source.
    for (ci, sc) in src.columns.iter().enumerate() {
        let path = format!("backends[{si}].columns[{ci}]");
        match (sc.is_virtual == Some(true), sc.hash_key == Some(true)) {
            (true, true) | (false, false) => {}
            (true, false) => problems.push(
                path,
                "not supported yet: virtual columns other than hash_key (only the row hash, hash_key: true, is computed)",
            ),
            (false, true) => problems.push(
                format!("{path}.hash_key"),
                format!("source column \"{}\" is hash_key but not virtual: SyncHub computes the row hash itself and does not read it from the source; add virtual: true", sc.name),
            ),
        }
    }
    let hash_keys: Vec<usize> = dst
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.hash_key == Some(true))
        .map(|(ci, _)| ci)
        .collect();
    if let [_, second, ..] = hash_keys.as_slice() {
        problems.push(
            format!("backends[{di}].columns[{second}].hash_key"),
            "only one destination column can store the row hash (hash_key: true)",
        );
    }
    let names: Vec<&str> = dst.columns.iter().map(|c| c.name.as_str()).collect();
    check_columns(
        &names,
        &columns,
        &format!("backends[{di}].columns"),
        "name",
        problems,
    );
    Some((source?, destination?, columns))
}

fn staged_column(
    path: &str,
    dc: &BackendColumn,
    src: &BackendConfig,
    fetch_columns: &[crate::config::StageColumn],
    catalog: Option<&SourceCatalog>,
    problems: &mut Problems,
) -> Option<MappedColumn> {
    if dc.hash_key == Some(true) {
        return stored_hash_column(path, dc, problems);
    }
    if dc.is_virtual == Some(true) {
        problems.push(
            path,
            "not supported yet: virtual destination columns (other than a source hash_key column)",
        );
        return None;
    }
    let (ty, data_type_from) = match &dc.data_type {
        Some(name) => (
            parse_type(problems, path, name, dc.precision, dc.scale, dc.length),
            None,
        ),
        None => match catalog.and_then(|c| c.types.get(&dc.name)) {
            Some(Ok(ty)) => (*ty, Some(DataTypeFrom::SourceCatalog)),
            Some(Err(why)) => {
                problems.push(format!("{path}.data_type"), why.clone());
                return None;
            }
            None => {
                problems.push(
                    format!("{path}.data_type"),
                    format!("column \"{}\" has no data_type, and the source's catalog was not read; give data_type", dc.name),
                );
                return None;
            }
        },
    };
    // Source of the value: a data_fetch column of that name, else the source
    // backend column of that name.
    let (source, source_sql) = if let Some(fc) = fetch_columns.iter().find(|c| c.name == dc.name) {
        match &fc.expr {
            Some(expr) => {
                problems.push(
                    path.to_string(),
                    format!("not supported yet: expr for column \"{}\"", dc.name),
                );
                (expr.clone(), expr.clone())
            }
            None => (dc.name.clone(), quote_ident(&dc.name)),
        }
    } else if let Some(sc) = src.columns.iter().find(|c| c.name == dc.name) {
        if sc.is_virtual == Some(true) {
            problems.push(
                path.to_string(),
                format!("source column \"{}\" is virtual (the computed row hash): mark the destination column hash_key: true (data_type: bigint) to store it", sc.name),
            );
            return None;
        }
        if let Some(expr) = &sc.expr {
            problems.push(
                path.to_string(),
                format!("not supported yet: expr for column \"{}\"", sc.name),
            );
            (expr.clone(), expr.clone())
        } else {
            (sc.name.clone(), quote_ident(&sc.name))
        }
    } else {
        let names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();
        let hint = yaml::closest(&dc.name, &names)
            .map(|c| format!("; did you mean \"{c}\"?"))
            .unwrap_or_default();
        problems.push(
            format!("{path}.name"),
            format!("destination column \"{}\" has no source column of that name in backend \"{}\"{hint}", dc.name, src.name),
        );
        return None;
    };
    let unique = dc.unique_column.unwrap_or(false);
    // `hash_column` may be said on either side (the spec's column-level
    // example puts it on the source column); the destination's word wins.
    let hash_column = dc
        .hash_column
        .or_else(|| {
            src.columns
                .iter()
                .find(|c| c.name == dc.name)
                .and_then(|c| c.hash_column)
        })
        .unwrap_or(true);
    Some(MappedColumn {
        spec: ColumnSpec {
            name: dc.name.clone(),
            data_type: ty,
            unique,
            nullable: !unique,
        },
        dest: dc.name.clone(),
        source,
        source_sql,
        data_type: ty.to_string(),
        unique,
        hash_column,
        stored_hash: StoredHash::No,
        data_type_from,
    })
}

/// A destination `hash_key: true` column: it stores the row hash of the
/// row's `hash_column` columns, computed when the source is read.
fn stored_hash_column(
    path: &str,
    dc: &BackendColumn,
    problems: &mut Problems,
) -> Option<MappedColumn> {
    let before = problems.0.len();
    let Some(data_type) = &dc.data_type else {
        problems.push(
            format!("{path}.data_type"),
            format!("hash_key column \"{}\" needs a data_type: bigint, or varchar to store the row hash as 16 hex digits", dc.name),
        );
        return None;
    };
    let ty = parse_type(problems, path, data_type, dc.precision, dc.scale, dc.length);
    let hash_type_ok = match ty {
        ColumnType::Int64 | ColumnType::Text => true,
        ColumnType::String { max_len } => max_len.is_none_or(|n| n >= 16),
        _ => false,
    };
    if !hash_type_ok && problems.0.len() == before {
        problems.push(
            format!("{path}.data_type"),
            format!(
                "hash_key column \"{}\" stores the 64-bit row hash: its data_type must be bigint, or varchar/text to store it as 16 hex digits, not {data_type}",
                dc.name
            ),
        );
    }
    if dc.is_virtual == Some(true) {
        problems.push(
            format!("{path}.virtual"),
            format!("destination hash_key column \"{}\" stores the row hash, so it cannot be virtual; virtual: true belongs on the source backend's hash_key column", dc.name),
        );
    }
    if dc.unique_column == Some(true) {
        problems.push(
            format!("{path}.unique_column"),
            format!("hash_key column \"{}\" cannot be a unique column", dc.name),
        );
    }
    if dc.hash_column == Some(true) {
        problems.push(
            format!("{path}.hash_column"),
            format!("hash_key column \"{}\" holds the hash of the hash columns, so it cannot be one itself", dc.name),
        );
    }
    if dc.expr.is_some() {
        problems.push(
            format!("{path}.expr"),
            format!(
                "hash_key column \"{}\" is computed by SyncHub; remove expr",
                dc.name
            ),
        );
    }
    if problems.0.len() > before {
        return None;
    }
    Some(MappedColumn {
        spec: ColumnSpec {
            name: dc.name.clone(),
            data_type: ty,
            unique: false,
            nullable: true,
        },
        dest: dc.name.clone(),
        source: dc.name.clone(),
        source_sql: computed_hash_sql(ty).to_string(),
        data_type: ty.to_string(),
        unique: false,
        hash_column: false,
        stored_hash: StoredHash::Compute,
        data_type_from: None,
    })
}

/// A `step_unit` as microseconds, or months.
fn step_for(
    kind: PartitionKind,
    step: i64,
    unit: Option<&str>,
    path: &str,
    problems: &mut Problems,
) -> Step {
    if step <= 0 {
        // The simple form's step is a field of its own.
        let step_path = match path {
            "partition_column" => "partition_step".to_string(),
            _ => format!("{path}.step"),
        };
        problems.push(
            step_path,
            format!("step must be at least 1, got {step}: it is how many values (or units of step_unit) one partition spans"),
        );
        return Step::Int(1);
    }
    match kind {
        PartitionKind::Integer => {
            if let Some(u) = unit {
                problems.push(
                    format!("{path}.step_unit"),
                    format!("step_unit \"{u}\" only applies to datetime partitions"),
                );
            }
            Step::Int(step)
        }
        PartitionKind::Datetime => {
            const SEC: i64 = 1_000_000;
            let per = match unit.unwrap_or("second") {
                "second" | "seconds" => SEC,
                "minute" | "minutes" => 60 * SEC,
                "hour" | "hours" => 3600 * SEC,
                "day" | "days" => 86_400 * SEC,
                "week" | "weeks" => 7 * 86_400 * SEC,
                "month" | "months" | "year" | "years" => {
                    let per_unit = if unit.is_some_and(|u| u.starts_with('y')) {
                        12
                    } else {
                        1
                    };
                    return match u32::try_from(step)
                        .ok()
                        .and_then(|s| s.checked_mul(per_unit))
                    {
                        Some(months) => Step::Months(months),
                        None => {
                            problems.push(
                                format!("{path}.step"),
                                format!(
                                    "step {step} {} is too long to partition by",
                                    unit.unwrap_or_default()
                                ),
                            );
                            Step::Months(1)
                        }
                    };
                }
                other => {
                    problems.push(
                        format!("{path}.step_unit"),
                        format!("unknown step_unit \"{other}\"; use second, minute, hour, day, week, month or year"),
                    );
                    SEC
                }
            };
            Step::Micros(step.saturating_mul(per))
        }
    }
}

/// Resolves a partition column name (source or dest name) to its SQL and type.
fn partition_dimension(
    name: &str,
    declared_type: Option<&str>,
    step: i64,
    unit: Option<&str>,
    path: &str,
    columns: &[MappedColumn],
    problems: &mut Problems,
) -> Option<PartitionDimension> {
    let mapped = columns.iter().find(|c| c.is_named(name));
    let (dim_name, sql, ty) = match mapped {
        Some(c) => (c.dest.clone(), c.source_sql.clone(), Some(c.spec.data_type)),
        None => {
            let Some(sql) = column_ref_sql(name) else {
                problems.push(format!("{path}.column"), not_a_column_name(name));
                return None;
            };
            (unmapped_dimension_name(name), sql, None)
        }
    };
    // The column's own type decides how bounds compare; `data_type: datetime`
    // on a date column still means whole days.
    let date_only = ty == Some(ColumnType::Date)
        || (ty.is_none() && declared_type.is_some_and(|t| t.eq_ignore_ascii_case("date")));
    let kind = match declared_type.map(|t| t.to_ascii_lowercase()) {
        Some(t) if ["int", "integer", "bigint", "smallint"].contains(&t.as_str()) => {
            PartitionKind::Integer
        }
        Some(t) if ["datetime", "timestamp", "timestamptz", "date"].contains(&t.as_str()) => {
            PartitionKind::Datetime
        }
        Some(t) => {
            problems.push(
                format!("{path}.data_type"),
                format!("cannot partition by a {t} column; use integer or datetime"),
            );
            return None;
        }
        None => match ty.and_then(|t| t.partitionable()) {
            Some(k) => k,
            None => {
                problems.push(
                    path.to_string(),
                    format!("partition column \"{name}\" must be an integer or date/time column"),
                );
                return None;
            }
        },
    };
    let step = step_for(kind, step, unit, path, problems);
    Some(PartitionDimension {
        name: dim_name,
        source_expr: sql,
        kind,
        date_only,
        step,
    })
}

fn normalize_strategy(
    default_partitioning: &[PartitionDimension],
    i: usize,
    s: &StrategyConfig,
    columns: &[MappedColumn],
    hash_algo: Option<&str>,
    problems: &mut Problems,
) -> Option<Strategy> {
    let path = format!("strategies[{i}]");
    let kind = match &s.kind {
        StrategyType::Full => StrategyKind::Full,
        StrategyType::Delta(_) => StrategyKind::Delta,
        StrategyType::Hash(_) => StrategyKind::Hash,
        StrategyType::Unknown { name } => {
            problems.push(
                format!("{path}.type"),
                format!("unknown strategy type \"{name}\"; use full, delta or hash"),
            );
            return None;
        }
    };
    if let Some(cron) = &s.cron {
        if let Err(e) = cron.parse::<croner::Cron>() {
            problems.push(
                format!("{path}.cron"),
                format!("\"{cron}\" is not a cron expression ({e}); write five fields, minute hour day-of-month month day-of-week, e.g. \"*/15 * * * *\""),
            );
        }
    }
    let mut primary = Vec::new();
    if !s.primary_partitions.is_empty() {
        for (pi, p) in s.primary_partitions.iter().enumerate() {
            let ppath = format!("{path}.primary_partitions[{pi}]");
            if let Some(d) = partition_config(p, &ppath, columns, problems) {
                primary.push(d);
            }
        }
    } else if kind != StrategyKind::Delta {
        // partition_column/partition_step cut whole tables; a delta run is
        // cut along its cursor instead.
        primary = default_partitioning.to_vec();
    }
    if kind == StrategyKind::Hash && primary.is_empty() {
        primary.extend(key_range_dimension(columns));
    }
    if kind == StrategyKind::Hash {
        // Both sides are cut by the same ranges, so the column must exist in
        // the destination too.
        for d in &primary {
            if !columns
                .iter()
                .any(|c| c.dest == d.name && c.source_sql == d.source_expr)
            {
                problems.push(
                    format!("{path}.primary_partitions"),
                    format!(
                        "a hash strategy compares both sides range by range, so its partition column must be synced; map {} in the columns",
                        d.source_expr
                    ),
                );
            }
        }
    }
    // Hash: the finer ranges a differing primary partition is cut into.
    let mut secondary = Vec::new();
    if kind == StrategyKind::Hash {
        for (si, sp) in s.secondary_partitions.iter().enumerate() {
            let spath = format!("{path}.secondary_partitions[{si}]");
            if let Some(d) = partition_config(sp, &spath, columns, problems) {
                if !primary.iter().any(|p| p.name == d.name) {
                    problems.push(
                        format!("{spath}.column"),
                        format!(
                            "secondary partition column \"{}\" has no primary partition; secondary partitions cut primary ones finer",
                            sp.column
                        ),
                    );
                }
                secondary.push(d);
            }
        }
    }
    let delta = match &s.kind {
        StrategyType::Delta(d) => Some(delta_spec(
            &path,
            d,
            &s.primary_partitions,
            columns,
            &mut primary,
            problems,
        )?),
        _ => None,
    };
    let delete_missing = match &s.kind {
        StrategyType::Hash(h) => h.delete_missing.unwrap_or(true),
        _ => false,
    };
    let page_size = s
        .page_size
        .or(s.data_fetch.as_ref().and_then(|d| d.page_size))
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .max(1);
    Some(Strategy {
        name: s.name.clone(),
        kind,
        enabled: s.enabled,
        cron: s.cron.clone(),
        page_size,
        primary,
        secondary,
        delta,
        index: i,
        delete_missing,
        batch_rows: s
            .pipeline_config
            .as_ref()
            .and_then(|c| c.batch_size)
            .map(|n| (n as usize).max(1)),
        unsupported: unsupported_fields(&path, kind, s, hash_algo),
    })
}

/// A hash strategy with no partitioning bisects over its key, when that is
/// one integer column: one range from the smallest key to the largest.
fn key_range_dimension(columns: &[MappedColumn]) -> Option<PartitionDimension> {
    let mut keys = columns.iter().filter(|c| c.unique);
    let key = keys.next()?;
    if keys.next().is_some() || key.spec.data_type.partitionable() != Some(PartitionKind::Integer) {
        return None;
    }
    Some(PartitionDimension {
        name: key.dest.clone(),
        source_expr: key.source_sql.clone(),
        kind: PartitionKind::Integer,
        date_only: false,
        step: Step::Single,
    })
}

/// The delta cursor of a strategy: its column, its step (taken from a
/// primary partition on the same column, which then leaves `primary`), the
/// lookback and what to do with NULL cursors.
fn delta_spec(
    path: &str,
    delta: &DeltaConfig,
    partitions: &[PartitionConfig],
    columns: &[MappedColumn],
    primary: &mut Vec<PartitionDimension>,
    problems: &mut Problems,
) -> Option<DeltaSpec> {
    // Without `column`, the spec's examples cut the delta window by a
    // datetime primary partition: that column is the cursor.
    let implied = partitions.iter().find(|p| {
        ["datetime", "timestamp", "timestamptz", "date"]
            .contains(&p.data_type.to_ascii_lowercase().as_str())
    });
    let Some(column) = delta
        .column
        .as_deref()
        .or(implied.map(|p| p.column.as_str()))
    else {
        problems.push(
            format!("{path}.column"),
            "a delta strategy needs column: the date/time or increasing integer column that marks changed rows",
        );
        return None;
    };
    let mapped = columns.iter().find(|c| c.is_named(column));
    let declared = partitions
        .iter()
        .find(|p| p.column == column)
        .map(|p| p.data_type.clone());
    if let Some(c) = mapped {
        if c.spec.data_type.partitionable().is_none() {
            problems.push(
                format!("{path}.column"),
                format!(
                    "delta column \"{column}\" is {}; a delta cursor must be a date/time column or a monotonically increasing integer",
                    c.spec.data_type
                ),
            );
            return None;
        }
    } else if declared.is_none() {
        problems.push(
            format!("{path}.column"),
            format!("delta column \"{column}\" is not in the column map; map it, or give its data_type in a primary_partitions entry"),
        );
        return None;
    }
    let mut cursor = match primary.iter().position(|d| {
        mapped.is_some_and(|c| c.dest == d.name) || d.name == unmapped_dimension_name(column)
    }) {
        Some(i) => primary.remove(i),
        None => partition_dimension(
            column,
            declared.as_deref(),
            1,
            None,
            &format!("{path}.column"),
            columns,
            problems,
        )?,
    };
    if partitions.iter().all(|p| p.column != column) {
        cursor.step = Step::Single;
    }
    let lookback = match delta.lookback {
        None => 0,
        Some(n) if n < 0 => {
            problems.push(
                format!("{path}.lookback"),
                format!("lookback must be 0 or more, got {n}"),
            );
            0
        }
        Some(n) => match (
            cursor.kind,
            step_for(
                cursor.kind,
                n.max(1),
                delta.lookback_unit.as_deref(),
                path,
                problems,
            ),
        ) {
            (_, _) if n == 0 => 0,
            (PartitionKind::Integer, Step::Int(v)) => v,
            (PartitionKind::Datetime, Step::Micros(v)) => v,
            (_, Step::Months(_)) => {
                problems.push(
                    format!("{path}.lookback_unit"),
                    "lookback takes second, minute, hour, day or week",
                );
                0
            }
            _ => 0,
        },
    };
    let include_nulls = match delta.null_cursor.as_deref() {
        None | Some("include") => true,
        Some("skip") => false,
        Some(other) => {
            problems.push(
                format!("{path}.null_cursor"),
                format!("unknown null_cursor \"{other}\"; use include (re-read rows whose cursor is NULL on every run) or skip"),
            );
            true
        }
    };
    Some(DeltaSpec {
        cursor,
        lookback,
        include_nulls,
    })
}

fn simple_partitioning(
    raw: &PipelineFile,
    columns: &[MappedColumn],
    problems: &mut Problems,
) -> Vec<PartitionDimension> {
    let Some(step) = raw.partition_step else {
        if raw.partition_column.is_some() {
            problems.push(
                "partition_column",
                "partition_column needs a partition_step",
            );
        }
        return Vec::new();
    };
    let col = raw.partition_column.clone().or_else(|| {
        raw.column_map
            .iter()
            .find(|c| c.roles.iter().any(|r| r == "partition_column"))
            .map(|c| c.source.clone())
    });
    match col {
        Some(col) => partition_dimension(
            &col,
            None,
            step,
            None,
            "partition_column",
            columns,
            problems,
        )
        .into_iter()
        .collect(),
        None => {
            problems.push(
                "partition_step",
                "partition_step needs a partition_column (or a column with role partition_column)",
            );
            Vec::new()
        }
    }
}

fn partition_config(
    p: &PartitionConfig,
    path: &str,
    columns: &[MappedColumn],
    problems: &mut Problems,
) -> Option<PartitionDimension> {
    if let Some(k) = &p.kind {
        if k != "range" {
            problems.push(
                format!("{path}.type"),
                format!("not supported yet: partition type {k}"),
            );
            return None;
        }
    }
    partition_dimension(
        &p.column,
        Some(&p.data_type),
        p.step,
        p.step_unit.as_deref(),
        path,
        columns,
        problems,
    )
}

/// Fields of strategy `s` (at `path`) that parse but that a `kind`
/// strategy cannot honour yet, by path.
fn unsupported_fields(
    path: &str,
    kind: StrategyKind,
    s: &StrategyConfig,
    hash_algo: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if kind == StrategyKind::Hash {
        if let Some(algo) = hash_algo.filter(|a| *a != "md5_sum_hash") {
            out.push(format!("hash_algo: {algo}"));
        }
    }
    if !s.secondary_partitions.is_empty() && kind != StrategyKind::Hash {
        out.push(format!("{path}.secondary_partitions"));
    }
    if !s.delta_partitions.is_empty() {
        out.push(format!("{path}.delta_partitions"));
    }
    if s.use_sub_partition == Some(true) || s.sub_partition_step.is_some() {
        out.push(format!("{path}.use_sub_partition"));
    }
    if kind != StrategyKind::Delta && s.primary_partitions.iter().any(|p| p.bounded == Some(true)) {
        out.push(format!("{path}.primary_partitions.bounded"));
    }
    // What SyncHub always does is accepted; its opposite is not there.
    if s.prevent_update_unless_changed == Some(false) {
        out.push(format!("{path}.prevent_update_unless_changed: false"));
    }
    if s.use_pagination == Some(false) {
        out.push(format!("{path}.use_pagination: false"));
    }
    if let Some(fetch) = &s.data_fetch {
        if fetch.enabled == Some(false) {
            out.push(format!("{path}.data_fetch.enabled: false"));
        }
        if fetch.use_pagination == Some(false) {
            out.push(format!("{path}.data_fetch.use_pagination: false"));
        }
    }
    if let Some(n) = s
        .pipeline_config
        .as_ref()
        .and_then(|c| c.max_concurrent_batches)
        .filter(|n| *n != 1)
    {
        out.push(format!(
            "{path}.pipeline_config.max_concurrent_batches: {n} (use max_concurrent_partitions)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Option<Vec<String>> {
        column_ref_parts(s)
    }

    #[test]
    fn column_references_plain_qualified_and_quoted() {
        let v = |p: &[&str]| Some(p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parts("id"), v(&["id"]));
        assert_eq!(parts("o.id"), v(&["o", "id"]));
        assert_eq!(parts(r#""Order Id""#), v(&["Order Id"]));
        assert_eq!(parts(r#"o."Order Id""#), v(&["o", "Order Id"]));
        assert_eq!(parts(r#""o t"."a.b""#), v(&["o t", "a.b"]));
        assert_eq!(parts(r#""say ""hi""""#), v(&[r#"say "hi""#]));
        assert_eq!(
            column_ref_sql(r#"o."say ""hi""""#).as_deref(),
            Some(r#""o"."say ""hi""""#)
        );
        for bad in [
            "", "a b", "id + 1", "a.b.c", r#""""#, r#""open"#, r#""a"b"#, r#""a"."#, "1st", ".id",
            "id.",
        ] {
            assert_eq!(parts(bad), None, "{bad:?}");
        }
    }

    /// `strategies` (a YAML list) in a simple-form pipeline over SQLite
    /// stand-ins, validated.
    fn with_strategies(strategies: &str) -> Result<Pipeline> {
        let file = Path::new("p.yaml");
        let datastores = Datastores::parse(
            Path::new("datastores.yaml"),
            "datastores:\n  src: {type: sqlite, connection: {}}\n  dst: {type: sqlite, connection: {}}\n",
            &crate::connection::stand_in::types(),
            |_| None,
        )?;
        let text = format!(
            "name: p\nhash_algo: hash_md5_hash\nsource_provider:\n  data_backend: {{type: sqlite, datastore_name: src, table: t}}\ndestination_provider:\n  data_backend: {{type: sqlite, datastore_name: dst, table: t}}\ncolumn_map:\n  - {{source: id, dest: id, roles: [unique_column], data_type: bigint}}\n  - {{source: at, dest: at, data_type: datetime}}\nstrategies:\n{strategies}"
        );
        Pipeline::from_file(file, yaml::parse(file, &text)?, &datastores)
    }

    #[test]
    fn strategies_keep_what_planning_reads_from_their_typed_fields() {
        let p = with_strategies(
            "  - {name: d, type: delta, column: at, lookback: 2, lookback_unit: minute, null_cursor: skip, pipeline_config: {batch_size: 0}}\n  - {name: h, type: hash, delete_missing: false, use_pagination: false}\n  - {name: f, type: full, secondary_partitions: [{column: id, step: 5, data_type: int}]}\n",
        )
        .unwrap();
        let [d, h, f] = &p.strategies[..] else {
            panic!("{:?}", p.strategies)
        };
        let delta = d.delta.as_ref().unwrap();
        assert_eq!((delta.lookback, delta.include_nulls), (120_000_000, false));
        assert_eq!((d.batch_rows, d.unsupported.len()), (Some(1), 0));
        assert!(!h.delete_missing && h.batch_rows.is_none());
        assert_eq!(
            h.unsupported,
            [
                "hash_algo: hash_md5_hash",
                "strategies[1].use_pagination: false"
            ]
        );
        assert_eq!(f.unsupported, ["strategies[2].secondary_partitions"]);
    }

    #[test]
    fn an_unknown_strategy_type_is_named_with_the_files_other_problems() {
        let e = with_strategies(
            "  - {name: w, type: weekly, lookback: 2}\n  - {name: w, type: full}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml: strategies[0].type: unknown strategy type \"weekly\"; use full, delta or hash\np.yaml: strategies[1].name: strategy name \"w\" is used twice"
        );
    }

    #[test]
    fn a_column_is_named_by_dest_source_or_its_own_name() {
        let c = MappedColumn {
            spec: ColumnSpec {
                name: "order_id".into(),
                data_type: ColumnType::Int64,
                unique: true,
                nullable: false,
            },
            dest: "order_id".into(),
            source: r#"o."Order Id""#.into(),
            source_sql: r#""o"."Order Id""#.into(),
            data_type: "bigint".into(),
            unique: true,
            hash_column: true,
            stored_hash: StoredHash::No,
            data_type_from: None,
        };
        assert_eq!(c.source_column(), "Order Id");
        for name in ["order_id", r#"o."Order Id""#, "Order Id", r#""Order Id""#] {
            assert!(c.is_named(name), "{name}");
        }
        assert!(!c.is_named("Order"));
        assert!(c.is_source_reported_as("Order Id"));
        assert!(c.is_source_reported_as("o.Order Id"));
        assert!(!c.is_source_reported_as("xOrder Id"));
    }
}
