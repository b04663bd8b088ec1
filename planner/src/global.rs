//! `global_config.yaml`: the settings of the scheduler, the workers, storage
//! and the config build, as the spec shows them.
//!
//! Every section parses into a typed struct (a misspelt key is an error
//! with its line), and each one SyncHub does not act on yet is refused by
//! path: nothing in the file is accepted and then ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{PlannerError, Problem, Result};
use crate::yaml;

/// The file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub scheduler: Option<SchedulerConfig>,
    #[serde(default)]
    pub worker: Option<WorkerConfig>,
    #[serde(default)]
    pub storage: Option<StorageConfig>,
    #[serde(default)]
    pub build_system: Option<BuildSystemConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    #[serde(default)]
    pub db: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub http_port: Option<u16>,
    #[serde(default)]
    pub check_interval: Option<u64>,
    #[serde(default)]
    pub slot_definitions: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    #[serde(default)]
    pub max_jobs: Option<u32>,
    #[serde(default)]
    pub health_check_interval: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default)]
    pub state_dir: Option<String>,
    #[serde(default)]
    pub logs_dir: Option<String>,
    #[serde(default)]
    pub metrics_dir: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSystemConfig {
    #[serde(default)]
    pub user_config_dir: Option<String>,
    #[serde(default)]
    pub built_config_dir: Option<String>,
    #[serde(default)]
    pub datastores_path: Option<String>,
    #[serde(default)]
    pub auto_build_on_startup: Option<bool>,
    #[serde(default)]
    pub ddl_check_on_build: Option<String>,
    #[serde(default)]
    pub on_build_failure: Option<String>,
}

/// The top-level keys only a global config has.
const GLOBAL_SECTIONS: &[&str] = &["redis", "scheduler", "worker", "storage", "build_system"];

impl GlobalConfig {
    /// Reads and checks `file`: every problem at once, each by path.
    pub fn load(file: &Path) -> Result<GlobalConfig> {
        let text = yaml::read_file(file)?;
        let config: GlobalConfig = yaml::parse(file, &text)?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(PlannerError::Invalid {
                file: file.to_path_buf(),
                problems,
            })
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut refuse = |section: &str, why: &str| {
            problems.push(Problem {
                path: section.to_string(),
                message: format!("not supported yet: {section} ({why})"),
            })
        };
        if self.redis.is_some() {
            refuse("redis", "the Redis work queue comes with the workers");
        }
        if self.scheduler.is_some() {
            refuse("scheduler", "runs are started by `synchub run` for now");
        }
        if self.worker.is_some() {
            refuse("worker", "runs are started by `synchub run` for now");
        }
        if self.storage.is_some() {
            refuse(
                "storage",
                "state, logs and metrics go under --state-dir, default ./data",
            );
        }
        if let Some(b) = &self.build_system {
            for (key, value) in [
                ("ddl_check_on_build", &b.ddl_check_on_build),
                ("on_build_failure", &b.on_build_failure),
            ] {
                let valid: &[&str] = if key == "ddl_check_on_build" {
                    &["required", "optional", "skip"]
                } else {
                    &["keep_old", "remove"]
                };
                if let Some(v) = value.as_deref().filter(|v| !valid.contains(v)) {
                    problems.push(Problem {
                        path: format!("build_system.{key}"),
                        message: format!("\"{v}\" is not one of {}", valid.join(", ")),
                    });
                }
            }
            problems.push(Problem {
                path: "build_system".into(),
                message: "not supported yet: build_system (the config build comes later; pipelines are read as written)".into(),
            });
        }
        problems
    }
}

/// What a config file holds, told by its name (`datastores.yaml`,
/// `global_config.yaml`) or else by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFileKind {
    Pipeline,
    Datastores,
    Global,
}

impl ConfigFileKind {
    pub fn of(file: &Path) -> ConfigFileKind {
        match file.file_stem().and_then(|s| s.to_str()) {
            Some("datastores") => return ConfigFileKind::Datastores,
            Some("global_config") => return ConfigFileKind::Global,
            _ => {}
        }
        // A file that cannot be read as a mapping is left to the pipeline
        // reader, whose errors name the line.
        let keys = yaml::read_file(file).ok().and_then(|text| {
            yaml::parse::<BTreeMap<String, serde::de::IgnoredAny>>(file, &text).ok()
        });
        match keys {
            Some(keys) if keys.len() == 1 && keys.contains_key("datastores") => {
                ConfigFileKind::Datastores
            }
            Some(keys)
                if !keys.is_empty()
                    && keys.keys().all(|k| GLOBAL_SECTIONS.contains(&k.as_str())) =>
            {
                ConfigFileKind::Global
            }
            _ => ConfigFileKind::Pipeline,
        }
    }
}
