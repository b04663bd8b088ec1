//! A backend of either form as a table in its datastore: its joins and
//! filters parsed as SQL conditions, within a bound on their size.

use std::path::Path;

use super::{Join, Problems, TableRef};
use crate::config::{DataBackend, JoinConfig, PipelineFile};
use crate::datastores::Datastores;
use crate::error::{PlannerError, Result};
use crate::sql_expr::{SqlDialect, SqlExpr};

pub(super) fn table_ref(
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
        grouped: None,
    })
}

/// SQL text of all of a pipeline's filters and join conditions together.
/// A parsed expression takes up to ~125 times its text (each `1,` of an
/// `IN` list is a tree node of a few hundred bytes), so this bounds them at
/// a few MiB however large the file; 64 KiB is some 10,000 listed values.
pub const MAX_CONDITION_BYTES: usize = 64 * 1024;

/// Refuses a pipeline whose conditions exceed `MAX_CONDITION_BYTES`, at
/// the first one past it, before any is parsed.
pub(super) fn check_condition_bytes(file: &Path, raw: &PipelineFile) -> Result<()> {
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
