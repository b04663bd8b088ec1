//! Strategies as written: the fields every type takes, and those only its
//! `type` takes, read key by key so that a field of another type is refused
//! where it stands.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::default_true;

/// A strategy as written: the fields every type takes, and in `kind` those
/// only its type takes. Read by [`StrategyConfig::deserialize`], which
/// refuses a field of another type as an unknown field.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyConfig {
    pub name: String,
    #[serde(flatten)]
    pub kind: StrategyType,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub primary_partitions: Vec<PartitionConfig>,
    /// Hash: finer cuts of a primary partition whose checksums differ. The
    /// spec shows them on a delta strategy too, so every type reads them,
    /// and planning names them as not supported yet on the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secondary_partitions: Vec<PartitionConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_config: Option<StrategyPipelineConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_fetch: Option<DataFetchConfig>,
    // The spec's fields SyncHub does not implement, or only in the one
    // setting it always uses: read so that planning can refuse them by path
    // as not supported yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_sub_partition: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_partition_step: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prevent_update_unless_changed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_pagination: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delta_partitions: Vec<PartitionConfig>,
}

/// A strategy's `type`, with the fields only that type takes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StrategyType {
    Full(FullConfig),
    Delta(DeltaConfig),
    Hash(HashConfig),
    /// A type SyncHub does not have. Read with the fields of every type (and
    /// those dropped), so that validation names the type, among the file's
    /// other problems, rather than one of its fields.
    #[serde(untagged)]
    Unknown {
        #[serde(rename = "type")]
        name: String,
    },
}

impl StrategyType {
    /// The `type` as written.
    pub fn as_str(&self) -> &str {
        match self {
            StrategyType::Full(_) => "full",
            StrategyType::Delta(_) => "delta",
            StrategyType::Hash(_) => "hash",
            StrategyType::Unknown { name } => name,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeltaConfig {
    /// The cursor column; without it, the first datetime primary partition's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Re-read this far behind the watermark (in `lookback_unit`, default
    /// seconds; values for an integer cursor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookback: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookback_unit: Option<String>,
    /// `include` (default) or `skip` rows whose cursor is NULL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_cursor: Option<String>,
    /// An aggregate sync: remember each source row's group, so a row that
    /// moved re-computes the group it left too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_moves: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FullConfig {
    /// Delete destination rows missing from the source (default false: a
    /// full sync upserts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_missing: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HashConfig {
    /// Delete destination rows missing from the source (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_missing: Option<bool>,
}

/// Every field a strategy may have, in the order messages list them, and
/// the types that alone take it (none: every type).
const STRATEGY_FIELDS: [(&str, Owners); 20] = [
    ("name", &[]),
    ("type", &[]),
    ("column", &["delta"]),
    ("enabled", &[]),
    ("cron", &[]),
    ("page_size", &[]),
    ("use_sub_partition", &[]),
    ("sub_partition_step", &[]),
    ("prevent_update_unless_changed", &[]),
    ("use_pagination", &[]),
    ("lookback", &["delta"]),
    ("lookback_unit", &["delta"]),
    ("delete_missing", &["full", "hash"]),
    ("null_cursor", &["delta"]),
    ("track_moves", &["delta"]),
    ("primary_partitions", &[]),
    ("secondary_partitions", &[]),
    ("delta_partitions", &[]),
    ("pipeline_config", &[]),
    ("data_fetch", &[]),
];

/// The strategy types that alone take a field; empty: every type.
type Owners = &'static [&'static str];

/// The names alone, for `deserialize_struct`.
const STRATEGY_FIELD_NAMES: [&str; STRATEGY_FIELDS.len()] = {
    let mut names = [""; STRATEGY_FIELDS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = STRATEGY_FIELDS[i].0;
        i += 1;
    }
    names
};

/// Whether a strategy of type `kind` takes a field that `owners` alone
/// take. Before `type` is read (`kind` is `None`), and for a type SyncHub
/// does not have, every field is taken.
fn takes(kind: Option<&str>, owners: Owners) -> bool {
    match kind {
        Some(kind) => {
            owners.is_empty()
                || owners.contains(&kind)
                || !["full", "delta", "hash"].contains(&kind)
        }
        None => true,
    }
}

/// serde's unknown-field error, listing the fields a `kind` strategy takes.
fn unknown_strategy_field<E: de::Error>(key: &str, kind: Option<&str>) -> E {
    let expected: Vec<String> = STRATEGY_FIELDS
        .iter()
        .filter(|(_, owners)| takes(kind, owners))
        .map(|(field, _)| format!("`{field}`"))
        .collect();
    E::custom(format_args!(
        "unknown field `{key}`, expected one of {}",
        expected.join(", ")
    ))
}

/// The error for `field`, which only `owners` strategies take, in a `kind`
/// one. Worded as serde's unknown field, followed by what `yaml` shows
/// instead of a list.
fn field_of_another_type<E: de::Error>(field: &str, owners: Owners, kind: &str) -> E {
    let why = match (field, kind) {
        ("delete_missing", "delta") => {
            ": a delta reads the rows changed since its watermark and cannot see deleted ones"
        }
        _ => "",
    };
    E::custom(format_args!(
        "unknown field `{field}`; a {kind} strategy does not take it ({field} is for {} strategies{why})",
        owners.join(" and ")
    ))
}

/// Reads a strategy's key: one its type takes, with the type that alone
/// takes it if one does, or serde's unknown-field error (at the key's line
/// and column). Before `type` is read (`kind` is `None`), a field of any
/// type is taken.
struct StrategyKey<'a> {
    kind: Option<&'a str>,
}

impl<'de> de::DeserializeSeed<'de> for StrategyKey<'_> {
    type Value = (&'static str, Owners);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl de::Visitor<'_> for StrategyKey<'_> {
    type Value = (&'static str, Owners);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        match STRATEGY_FIELDS.iter().find(|(field, _)| *field == key) {
            Some(&(field, owners)) if takes(self.kind, owners) => Ok((field, owners)),
            Some((field, owners)) => Err(field_of_another_type(
                field,
                owners,
                self.kind.unwrap_or_default(),
            )),
            None => Err(unknown_strategy_field(key, self.kind)),
        }
    }
}

/// The next value into `slot`, refusing a field written twice as derived
/// structs do.
fn read_once<'de, A: de::MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    field: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(field));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// `type` decides which fields a strategy takes, wherever it is written, so
/// the keys are read one by one: a field of another type is refused at its
/// key once `type` is known, or, written before it, at the strategy's start
/// once the mapping is read. (A `#[serde(tag = "type")]` enum would read
/// the mapping into a buffer first and lose every line and column inside.)
impl<'de> Deserialize<'de> for StrategyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("StrategyConfig", &STRATEGY_FIELD_NAMES, StrategyVisitor)
    }
}

struct StrategyVisitor;

impl<'de> de::Visitor<'de> for StrategyVisitor {
    type Value = StrategyConfig;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct StrategyConfig")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<StrategyConfig, A::Error> {
        let (mut name, mut kind, mut enabled, mut cron, mut page_size) =
            (None, None, None, None, None);
        let (mut primary, mut secondary, mut delta_partitions) = (None, None, None);
        let (mut pipeline_config, mut data_fetch) = (None, None);
        let (mut use_sub_partition, mut sub_partition_step) = (None, None);
        let (mut prevent_update_unless_changed, mut use_pagination) = (None, None);
        let (mut column, mut lookback, mut lookback_unit, mut null_cursor) =
            (None, None, None, None);
        let (mut delete_missing, mut track_moves) = (None, None);
        // Fields of one type only, written before `type`, with that type.
        let mut before_type = Vec::new();
        while let Some((key, owners)) = map.next_key_seed(StrategyKey {
            kind: kind.as_deref(),
        })? {
            if kind.is_none() && !owners.is_empty() {
                before_type.push((key, owners));
            }
            let m = &mut map;
            match key {
                "name" => read_once(m, &mut name, key)?,
                "type" => read_once(m, &mut kind, key)?,
                "enabled" => read_once(m, &mut enabled, key)?,
                "cron" => read_once(m, &mut cron, key)?,
                "page_size" => read_once(m, &mut page_size, key)?,
                "primary_partitions" => read_once(m, &mut primary, key)?,
                "secondary_partitions" => read_once(m, &mut secondary, key)?,
                "delta_partitions" => read_once(m, &mut delta_partitions, key)?,
                "pipeline_config" => read_once(m, &mut pipeline_config, key)?,
                "data_fetch" => read_once(m, &mut data_fetch, key)?,
                "use_sub_partition" => read_once(m, &mut use_sub_partition, key)?,
                "sub_partition_step" => read_once(m, &mut sub_partition_step, key)?,
                "prevent_update_unless_changed" => {
                    read_once(m, &mut prevent_update_unless_changed, key)?
                }
                "use_pagination" => read_once(m, &mut use_pagination, key)?,
                "column" => read_once(m, &mut column, key)?,
                "lookback" => read_once(m, &mut lookback, key)?,
                "lookback_unit" => read_once(m, &mut lookback_unit, key)?,
                "null_cursor" => read_once(m, &mut null_cursor, key)?,
                "delete_missing" => read_once(m, &mut delete_missing, key)?,
                "track_moves" => read_once(m, &mut track_moves, key)?,
                other => return Err(unknown_strategy_field(other, None)),
            }
        }
        let name: String = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let kind: String = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        if let Some((field, owners)) = before_type
            .iter()
            .find(|(_, owners)| !takes(Some(&kind), owners))
        {
            return Err(field_of_another_type(field, owners, &kind));
        }
        let kind = match kind.as_str() {
            "full" => StrategyType::Full(FullConfig {
                delete_missing: delete_missing.flatten(),
            }),
            "delta" => StrategyType::Delta(DeltaConfig {
                column: column.flatten(),
                lookback: lookback.flatten(),
                lookback_unit: lookback_unit.flatten(),
                null_cursor: null_cursor.flatten(),
                track_moves: track_moves.flatten(),
            }),
            "hash" => StrategyType::Hash(HashConfig {
                delete_missing: delete_missing.flatten(),
            }),
            _ => StrategyType::Unknown { name: kind },
        };
        Ok(StrategyConfig {
            name,
            kind,
            enabled: enabled.unwrap_or_else(default_true),
            cron: cron.flatten(),
            page_size: page_size.flatten(),
            primary_partitions: primary.unwrap_or_default(),
            secondary_partitions: secondary.unwrap_or_default(),
            pipeline_config: pipeline_config.flatten(),
            data_fetch: data_fetch.flatten(),
            use_sub_partition: use_sub_partition.flatten(),
            sub_partition_step: sub_partition_step.flatten(),
            prevent_update_unless_changed: prevent_update_unless_changed.flatten(),
            use_pagination: use_pagination.flatten(),
            delta_partitions: delta_partitions.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    pub column: String,
    pub step: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_unit: Option<String>,
    pub data_type: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyPipelineConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_batches: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataFetchConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_pagination: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineFile;
    use std::path::Path;

    /// The strategies of a pipeline whose `strategies:` list is `list`, or
    /// the parse error as printed.
    fn strategies(list: &str) -> Result<Vec<StrategyConfig>, String> {
        let text = format!("name: p\nstrategies:\n{list}");
        crate::yaml::parse::<PipelineFile>(Path::new("p.yaml"), &text)
            .map(|p| p.strategies)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_type_reads_its_own_fields() {
        let s = strategies(
            "  - {name: d, type: delta, column: at, lookback: 5, lookback_unit: minute, null_cursor: skip, page_size: 10}\n  - {delete_missing: false, name: h, type: hash}\n  - {name: f, type: full, enabled: false}\n",
        )
        .unwrap();
        let StrategyType::Delta(d) = &s[0].kind else {
            panic!("{:?}", s[0].kind)
        };
        assert_eq!(
            (d.column.as_deref(), d.lookback, d.lookback_unit.as_deref()),
            (Some("at"), Some(5), Some("minute"))
        );
        assert_eq!(
            (d.null_cursor.as_deref(), s[0].page_size),
            (Some("skip"), Some(10))
        );
        let StrategyType::Hash(h) = &s[1].kind else {
            panic!("{:?}", s[1].kind)
        };
        assert_eq!(h.delete_missing, Some(false));
        assert!(
            matches!(
                s[2].kind,
                StrategyType::Full(FullConfig {
                    delete_missing: None
                })
            ) && !s[2].enabled
        );
        let f = strategies("  - {name: f, type: full, delete_missing: true}\n").unwrap();
        assert!(matches!(
            f[0].kind,
            StrategyType::Full(FullConfig {
                delete_missing: Some(true)
            })
        ));
        assert!(s[1].enabled, "enabled by default");
    }

    #[test]
    fn a_field_of_another_type_or_none_is_refused_where_it_stands() {
        for (list, error) in [
            (
                "  - name: h\n    type: hash\n    lookback: 5\n",
                "p.yaml:5:5: unknown field \"lookback\" in strategies[0]; a hash strategy does not take it (lookback is for delta strategies)",
            ),
            (
                "  - {name: d, type: delta, column: at, delete_missing: true}\n",
                "p.yaml:3:40: unknown field \"delete_missing\" in strategies[0]; a delta strategy does not take it (delete_missing is for full and hash strategies: a delta reads the rows changed since its watermark and cannot see deleted ones)",
            ),
            (
                "  - {name: d, delete_missing: false, type: delta}\n",
                "p.yaml:3:5: unknown field \"delete_missing\" in strategies[0]; a delta strategy does not take it (delete_missing is for full and hash strategies: a delta reads the rows changed since its watermark and cannot see deleted ones)",
            ),
            // Written before `type`: known wrong once the strategy is read,
            // so said at its start.
            (
                "  - name: d\n    column: at\n    type: hash\n",
                "p.yaml:3:5: unknown field \"column\" in strategies[0]; a hash strategy does not take it (column is for delta strategies)",
            ),
            // The hint comes from the fields of the strategy's type.
            (
                "  - {name: d, type: delta, lookbak: 5}\n",
                "p.yaml:3:28: unknown field \"lookbak\" in strategies[0]; did you mean \"lookback\"?",
            ),
            (
                "  - {name: f, type: full, zzz: 1}\n",
                "p.yaml:3:27: unknown field \"zzz\" in strategies[0]; valid fields: name, type, enabled, cron, page_size, use_sub_partition, sub_partition_step, prevent_update_unless_changed, use_pagination, delete_missing, primary_partitions, secondary_partitions, delta_partitions, pipeline_config, data_fetch",
            ),
            // Before `type`, the fields of every type.
            (
                "  - {name: f, zzz: 1, type: full}\n",
                "p.yaml:3:15: unknown field \"zzz\" in strategies[0]; valid fields: name, type, column, enabled, cron, page_size, use_sub_partition, sub_partition_step, prevent_update_unless_changed, use_pagination, lookback, lookback_unit, delete_missing, null_cursor, track_moves, primary_partitions, secondary_partitions, delta_partitions, pipeline_config, data_fetch",
            ),
            (
                "  - {name: f, type: full, type: hash}\n",
                "p.yaml:3:5: invalid YAML: strategies[0]: duplicate field `type`",
            ),
            (
                "  - {name: f}\n",
                "p.yaml:3:5: invalid YAML: strategies[0]: missing field `type`",
            ),
        ] {
            assert_eq!(strategies(list).unwrap_err(), error, "{list}");
        }
    }

    #[test]
    fn an_unknown_type_parses_with_any_types_fields_for_validation_to_name() {
        let s =
            strategies("  - {name: x, type: weekly, lookback: 5, delete_missing: true}\n").unwrap();
        assert!(matches!(&s[0].kind, StrategyType::Unknown { name } if name == "weekly"));
        assert_eq!(s[0].kind.as_str(), "weekly");
    }

    #[test]
    fn a_strategy_serializes_with_its_type() {
        let s = strategies("  - {name: d, type: delta, column: at}\n  - {name: x, type: weekly}\n")
            .unwrap();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!([
                {"name": "d", "type": "delta", "column": "at", "enabled": true},
                {"name": "x", "type": "weekly", "enabled": true},
            ])
        );
    }
}
