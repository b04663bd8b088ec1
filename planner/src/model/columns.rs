//! Column checks both config forms share.

use std::collections::HashSet;

use super::{MappedColumn, Problems};
use crate::types::{ColumnType, DATA_TYPE_NAMES};
use crate::yaml;

pub(super) fn parse_type(
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

/// `names` are the destination names as written, so paths count every entry,
/// valid or not; `field` is what the entry calls its name (`dest` or `name`).
pub(super) fn check_columns(
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
