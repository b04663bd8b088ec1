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
    /// The HTTP API's port (`scheduler start --http-port` wins).
    #[serde(default)]
    pub http_port: Option<u16>,
    /// The API's bearer token, as `${VAR}`: the variable holding it
    /// (`SYNCHUB_API_TOKEN` in the environment wins).
    #[serde(default)]
    pub api_token: Option<String>,
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
        let refuse = |problems: &mut Vec<Problem>, section: &str, why: &str| {
            problems.push(Problem {
                path: section.to_string(),
                message: format!("not supported yet: {section} ({why})"),
            })
        };
        if let Some(scheduler) = &self.scheduler {
            if scheduler.http_port == Some(0) {
                problems.push(Problem {
                    path: "scheduler.http_port".into(),
                    message: "0 is no port; give the API's port, e.g. 8001".into(),
                });
            }
            if let Some(token) = &scheduler.api_token {
                if token_variable(token).is_none() {
                    problems.push(Problem {
                        path: "scheduler.api_token".into(),
                        message: "a token written in the file; name the environment variable that holds it instead, e.g. api_token: ${SYNCHUB_API_TOKEN}".into(),
                    });
                }
            }
            if scheduler.check_interval == Some(0) {
                problems.push(Problem {
                    path: "scheduler.check_interval".into(),
                    message: "0 seconds; give how often the pipelines are read again, e.g. 60"
                        .into(),
                });
            }
            for (slot, capacity) in &scheduler.slot_definitions {
                if *capacity == 0 {
                    problems.push(Problem {
                        path: format!("scheduler.slot_definitions.{slot}"),
                        message:
                            "0 runs at once would never run the slot's pipelines; give at least 1"
                                .into(),
                    });
                }
            }
        }
        if let Some(worker) = &self.worker {
            if worker.max_jobs == Some(0) {
                problems.push(Problem {
                    path: "worker.max_jobs".into(),
                    message: "0 tasks at once; give at least 1".into(),
                });
            }
            if worker.health_check_interval.is_some() {
                refuse(
                    &mut problems,
                    "worker.health_check_interval",
                    "a worker heartbeats each task it holds; set how soon a silent worker's task is taken over with `synchub worker start --reclaim-after`",
                );
            }
        }
        if self.storage.is_some() {
            refuse(
                &mut problems,
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

/// `VAR` of a `${VAR}`: the only way a global config names the API token.
pub fn token_variable(value: &str) -> Option<&str> {
    let name = value.strip_prefix("${")?.strip_suffix('}')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

impl SchedulerConfig {
    /// The API token the config names: the value of its `${VAR}`, when set
    /// and not empty.
    pub fn api_token(&self) -> Option<String> {
        let var = token_variable(self.api_token.as_deref()?)?;
        std::env::var(var).ok().filter(|t| !t.is_empty())
    }
}

impl GlobalConfig {
    /// `global_config.yaml` as `explicit` names it, else beside the
    /// pipelines in `config_dir` when there is one there.
    pub fn find(
        explicit: Option<&Path>,
        config_dir: Option<&Path>,
    ) -> Result<Option<GlobalConfig>> {
        match explicit {
            Some(file) => GlobalConfig::load(file).map(Some),
            None => match config_dir.map(|d| d.join("global_config.yaml")) {
                Some(file) if file.is_file() => GlobalConfig::load(&file).map(Some),
                _ => Ok(None),
            },
        }
    }

    /// `redis.url`, with `redis.db` as its database when given.
    pub fn redis_url(&self) -> Option<String> {
        let redis = self.redis.as_ref()?;
        Some(match redis.db {
            Some(db) => format!("{}/{db}", redis.url.trim_end_matches('/')),
            None => redis.url.clone(),
        })
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
