//! The pipeline file as written: every field of both forms the spec shows.
//!
//! Parsing accepts everything the spec's examples contain; the planner then
//! normalises the simple form into the stage form and rejects, by field path,
//! whatever is not implemented yet.

use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
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

/// Where a provider's rows live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataBackend {
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapEntry {
    pub source: String,
    pub dest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_column: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sub_partition: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_partition_step: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevent_update_unless_changed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_pagination: Option<bool>,
    /// Delta: re-read this far behind the watermark (in `lookback_unit`,
    /// default seconds; values for an integer cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback_unit: Option<String>,
    /// Hash: delete destination rows missing from the source (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_missing: Option<bool>,
    /// Delta: `include` (default) or `skip` rows whose cursor is NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_partitions: Vec<PartitionConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_partitions: Vec<PartitionConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delta_partitions: Vec<PartitionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_config: Option<StrategyPipelineConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_fetch: Option<DataFetchConfig>,
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

/// A named table in the stage form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
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
    #[serde(default)]
    pub columns: Vec<BackendColumn>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendColumn {
    pub name: String,
    /// Taken from the source table's catalog when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
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
