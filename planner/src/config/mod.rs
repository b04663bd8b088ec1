//! The pipeline file as written: every field of both forms the spec shows.
//!
//! Parsing accepts everything the spec's examples contain; the planner then
//! normalises the simple form into the stage form and rejects, by field path,
//! whatever is not implemented yet.

mod strategy;

use serde::{Deserialize, Serialize};

pub use strategy::{
    DataFetchConfig, DeltaConfig, FullConfig, HashConfig, PartitionConfig, StrategyConfig,
    StrategyPipelineConfig, StrategyType,
};

fn default_true() -> bool {
    true
}

/// Declares config structs (`Debug, Clone, Deserialize, Serialize`,
/// `deny_unknown_fields`) that have the `shared` fields, written once, between
/// their own fields before and after them: the order messages list fields
/// in. `#[serde(flatten)]` would share fields without a macro, but serde
/// does not combine it with `deny_unknown_fields`.
macro_rules! structs_sharing_fields {
    (shared $shared:tt $($structs:tt)*) => {
        structs_sharing_fields!(@each $shared $($structs)*);
    };
    (@each { $($shared:tt)* }
        $(#[$meta:meta])*
        pub struct $name:ident { $($before:tt)* } { $($after:tt)* }
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($before)*
            $($shared)*
            $($after)*
        }
        structs_sharing_fields!(@each { $($shared)* } $($rest)*);
    };
    (@each $shared:tt) => {};
}

/// A pipeline file, in the simple form (`source_provider`, `column_map`, ...)
/// or the stage form (`backends`, `stages`, ...).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_step: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_partitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
    /// The scheduler's slot this pipeline's runs count against (one of the
    /// global config's `scheduler.slot_definitions`; default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Aggregate syncs: `auto` (default), `source` or `datafusion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_engine: Option<String>,

    // Simple form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_map: Vec<ColumnMapEntry>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<StrategyConfig>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<EnrichmentConfig>,

    // Stage form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub data_backend: DataBackend,
}

// A table in a datastore: a provider's `data_backend` in the simple form,
// a backend with its name and columns in the stage form.
structs_sharing_fields! {
    shared {
        #[serde(rename = "type")]
        pub kind: String,
        pub datastore_name: String,
        pub table: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub schema: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub alias: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub join: Vec<JoinConfig>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub filters: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub supports_update: Option<bool>,
    }

    /// Where a provider's rows live.
    pub struct DataBackend {} {}

    /// A named table in the stage form.
    pub struct BackendConfig {
        pub name: String,
    } {
        #[serde(default)]
        pub columns: Vec<BackendColumn>,
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub on: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

// A column's type parameters, the same in both forms' columns.
structs_sharing_fields! {
    shared {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub precision: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scale: Option<i8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub length: Option<u32>,
    }

    /// A `column_map` entry of the simple form.
    pub struct ColumnMapEntry {
        pub source: String,
        pub dest: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub roles: Vec<String>,
        pub data_type: String,
    } {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hash_column: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub transform: Option<String>,
    }

    /// A column of a backend in the stage form.
    pub struct BackendColumn {
        pub name: String,
        /// Taken from the source table's catalog when not given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub data_type: Option<String>,
    } {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub unique_column: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hash_column: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hash_key: Option<bool>,
        #[serde(rename = "virtual", default, skip_serializing_if = "Option::is_none")]
        pub is_virtual: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expr: Option<String>,
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichmentConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_config: Option<CacheConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<DimensionConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformations: Vec<TransformationConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxsize: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionConfig {
    pub name: String,
    pub join_key: String,
    pub source: DimensionSource,
    #[serde(default)]
    pub fields: Vec<FieldMapping>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub config: DimensionSourceConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionSourceConfig {
    pub datastore_name: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    pub source: String,
    pub dest: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransformationConfig {
    #[serde(default)]
    pub columns: Vec<String>,
    pub transform: String,
    pub dest: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicable_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<StageEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<StageEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<StageOptions>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageEndpoint {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<StageColumn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageColumn {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageOptions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedup_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_batch_size: Option<u32>,
}
