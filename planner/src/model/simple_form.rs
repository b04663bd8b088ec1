//! The simple form (`source_provider`, `destination_provider`,
//! `column_map`) normalised into tables and mapped columns.

use std::path::Path;

use super::columns::{check_columns, parse_type};
use super::names::not_a_column_name;
use super::tables::table_ref;
use super::{MappedColumn, Normalized, Problems, StoredHash};
use crate::column_ref::ColumnRef;
use crate::config::{ColumnMapEntry, PipelineFile};
use crate::datastores::Datastores;
use crate::types::ColumnSpec;
use crate::yaml;

pub(super) fn normalize_simple(
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
        let dialect = source
            .as_ref()
            .map(|t| crate::SqlDialect::of(&t.datastore))
            .unwrap_or(crate::SqlDialect::Postgres);
        if let Some(col) = simple_column(i, c, dialect, problems) {
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
    Some((source?, destination?, columns, None))
}

fn simple_column(
    i: usize,
    c: &ColumnMapEntry,
    dialect: crate::SqlDialect,
    problems: &mut Problems,
) -> Option<MappedColumn> {
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
    // The transform computes the value (from `source` and any other
    // column of the source row); the source's SQL evaluates it.
    let computed = c.transform.as_ref().and_then(|t| {
        super::aggregate::transform_expr(
            &format!("{path}.transform"),
            &c.dest,
            t,
            dialect,
            &[],
            problems,
        )
    });
    if unique && computed.is_some() {
        problems.push(
            format!("{path}.transform"),
            format!("not supported yet: unique column \"{}\" computed by a transform (a key is read as the source holds it); key the destination on source columns", c.dest),
        );
    }
    let Some(source_ref) = ColumnRef::parse(&c.source) else {
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
        source_ref,
        data_type: ty.to_string(),
        unique,
        hash_column: c.hash_column.unwrap_or(true),
        stored_hash: StoredHash::No,
        data_type_from: None,
        expr: computed,
    })
}
