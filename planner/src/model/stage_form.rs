//! The stage form (`backends`, `stages`) normalised into tables and mapped
//! columns: the stages say which backend is read and which written.

use std::path::Path;

use super::aggregate::{check_dedup_stage, normalize_aggregate, SyncType};
use super::columns::{check_columns, parse_type};
use super::tables::table_ref;
use super::{DataTypeFrom, MappedColumn, Normalized, Problems, SourceCatalog, StoredHash};
use crate::column_ref::ColumnRef;
use crate::config::{
    BackendColumn, BackendConfig, DataBackend, PipelineFile, StageColumn, StageConfig,
};
use crate::datastores::Datastores;
use crate::sql_expr::SqlDialect;
use crate::types::{ColumnSpec, ColumnType};
use crate::yaml;

/// The stage saying which backend is the source and which the
/// destination: data_fetch, else populate, else the first naming a source.
pub(super) fn endpoint_stage(raw: &PipelineFile) -> Option<(usize, &StageConfig)> {
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

pub(super) fn normalize_staged(
    file: &Path,
    raw: &PipelineFile,
    sync: SyncType,
    datastores: &Datastores,
    catalog: Option<&SourceCatalog>,
    problems: &mut Problems,
) -> Option<Normalized> {
    let aggregate = sync == SyncType::Aggregate;
    for (i, s) in raw.stages.iter().enumerate() {
        if aggregate && s.kind == "dedup" {
            let group_by = endpoint_stage(raw)
                .and_then(|(_, e)| e.source.as_ref())
                .map(|e| e.group_by.clone())
                .unwrap_or_default();
            check_dedup_stage(i, s, &group_by, problems);
            continue;
        }
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
            if !aggregate && s.source.as_ref().is_some_and(|e| !e.group_by.is_empty()) {
                problems.push(
                    format!("stages[{i}].source.group_by"),
                    "group_by makes an aggregate sync: add sync_type: aggregate, or remove group_by",
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
        // An aggregate destination's virtual column with an expr only says
        // which group key a source column maps to (`order_date: expr:
        // date`); it is not stored.
        if aggregate && dc.is_virtual == Some(true) && dc.hash_key != Some(true) {
            if dc.expr.is_none() {
                problems.push(
                    format!("{path}.expr"),
                    format!("virtual column \"{}\" of an aggregate destination maps a source column to a group_by column: give expr with that column's name", dc.name),
                );
            }
            continue;
        }
        let dialect = destination_dialect(source.as_ref());
        let fetch = StagedSources {
            src,
            fetch_columns: &fetch_columns,
            dialect,
        };
        if let Some(col) = staged_column(&path, dc, &fetch, aggregate, catalog, problems) {
            columns.push(col);
        }
    }
    let aggregate = match endpoints {
        Some((i, stage)) if aggregate => {
            let group_by = stage
                .source
                .as_ref()
                .map(|e| e.group_by.clone())
                .unwrap_or_default();
            let dialect = destination_dialect(source.as_ref());
            normalize_aggregate(
                raw,
                i,
                &fetch_columns,
                &group_by,
                src,
                dst,
                di,
                dialect,
                problems,
            )
        }
        None if aggregate => {
            problems.push(
                "stages",
                "an aggregate sync needs a data_fetch stage whose source lists the columns (with expr) and group_by",
            );
            None
        }
        _ => None,
    };
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
    Some((source?, destination?, columns, aggregate))
}

/// The dialect the source's expressions are parsed in (PostgreSQL's when
/// the source did not resolve: its problem is reported on its own).
fn destination_dialect(source: Option<&crate::model::TableRef>) -> SqlDialect {
    source
        .map(|t| SqlDialect::of(&t.datastore))
        .unwrap_or(SqlDialect::Postgres)
}

/// Where a destination column's value may come from: the source backend's
/// columns and the data_fetch stage's, whose `expr`s parse in `dialect`.
struct StagedSources<'a> {
    src: &'a BackendConfig,
    fetch_columns: &'a [StageColumn],
    dialect: SqlDialect,
}

fn staged_column(
    path: &str,
    dc: &BackendColumn,
    from: &StagedSources<'_>,
    aggregate: bool,
    catalog: Option<&SourceCatalog>,
    problems: &mut Problems,
) -> Option<MappedColumn> {
    let (src, fetch_columns) = (from.src, from.fetch_columns);
    if dc.hash_key == Some(true) {
        return stored_hash_column(path, dc, aggregate, problems);
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
    let source_names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();
    // A row-level column's expr is a transform the source computes.
    let transform = |expr: &str, expr_path: String, problems: &mut Problems| {
        super::aggregate::transform_expr(
            &expr_path,
            &dc.name,
            expr,
            from.dialect,
            &source_names,
            problems,
        )
    };
    let mut computed = None;
    let (source, source_ref) = if let Some(fc) = fetch_columns.iter().find(|c| c.name == dc.name) {
        match &fc.expr {
            // The group-by computes it; `normalize_aggregate` checks it.
            Some(expr) if aggregate => (expr.clone(), ColumnRef::bare(&dc.name)),
            Some(expr) => {
                computed = transform(expr, format!("{path}.expr"), problems);
                (expr.clone(), ColumnRef::bare(&dc.name))
            }
            None => (dc.name.clone(), ColumnRef::bare(&dc.name)),
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
            computed = transform(expr, path.to_string(), problems);
            (expr.clone(), ColumnRef::bare(&sc.name))
        } else {
            (sc.name.clone(), ColumnRef::bare(&sc.name))
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
    if unique && computed.is_some() {
        problems.push(
            path.to_string(),
            format!("not supported yet: unique column \"{}\" computed by expr (a key is read as the source holds it); key the destination on source columns", dc.name),
        );
    }
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
        source_ref,
        data_type: ty.to_string(),
        unique,
        hash_column,
        stored_hash: StoredHash::No,
        data_type_from,
        expr: computed,
    })
}

/// A destination `hash_key: true` column: it stores the row hash of the
/// row's `hash_column` columns, computed when the source is read.
fn stored_hash_column(
    path: &str,
    dc: &BackendColumn,
    aggregate: bool,
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
    if aggregate && ty != ColumnType::Int64 && problems.0.len() == before {
        problems.push(
            format!("{path}.data_type"),
            format!(
                "hash_key column \"{}\" of an aggregate holds the wrapping sum of its group's row hashes: its data_type must be bigint, not {data_type}",
                dc.name
            ),
        );
    }
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
        source_ref: ColumnRef::bare(&dc.name),
        data_type: ty.to_string(),
        unique: false,
        hash_column: false,
        stored_hash: if aggregate {
            StoredHash::GroupSum
        } else {
            StoredHash::Compute
        },
        data_type_from: None,
        expr: None,
    })
}
