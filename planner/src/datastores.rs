//! `datastores.yaml`: named connections, with `${ENV_VAR}` substitution so
//! secrets stay out of files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{PlannerError, Result};
use crate::yaml;

/// A password or token: never printed, never serialized in clear.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The clear value, for handing to a driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DatastoresFile {
    datastores: BTreeMap<String, DatastoreConfig>,
}

/// One connection as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub connection: ConnectionConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, alias = "database", skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// File path, for embedded databases; relative to the datastores file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A resolved connection the connectors can open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Datastore {
    Postgres {
        name: String,
        host: String,
        port: u16,
        user: String,
        password: Option<Secret>,
        dbname: String,
        schema: Option<String>,
    },
    Sqlite {
        name: String,
        path: PathBuf,
    },
}

impl Datastore {
    pub fn name(&self) -> &str {
        match self {
            Datastore::Postgres { name, .. } | Datastore::Sqlite { name, .. } => name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Datastore::Postgres { .. } => "postgres",
            Datastore::Sqlite { .. } => "sqlite",
        }
    }
    /// The schema a table without one lives in.
    pub fn default_schema(&self) -> Option<&str> {
        match self {
            Datastore::Postgres { schema, .. } => Some(schema.as_deref().unwrap_or("public")),
            Datastore::Sqlite { .. } => None,
        }
    }
}

/// Every datastore of a file, resolved.
#[derive(Debug, Clone)]
pub struct Datastores {
    pub file: PathBuf,
    pub stores: BTreeMap<String, Datastore>,
}

/// The datastore types SyncHub can connect to today.
pub const DATASTORE_TYPES: &[&str] = &["postgres", "sqlite"];
/// Types named in the spec that are still to come.
const PLANNED_TYPES: &[&str] = &[
    "mysql",
    "mariadb",
    "starrocks",
    "clickhouse",
    "duckdb",
    "s3",
    "delta",
    "parquet",
];

impl Datastores {
    pub fn load(file: &Path) -> Result<Datastores> {
        let text = std::fs::read_to_string(file).map_err(|e| PlannerError::Io {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let text = substitute_env(file, &text, |v| std::env::var(v).ok())?;
        let parsed: DatastoresFile = yaml::parse(file, &text)?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut stores = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, cfg) in parsed.datastores {
            match resolve(&name, &cfg, base) {
                Ok(ds) => {
                    stores.insert(name, ds);
                }
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(PlannerError::Invalid {
                file: file.to_path_buf(),
                problems,
            });
        }
        Ok(Datastores {
            file: file.to_path_buf(),
            stores,
        })
    }

    /// Finds the datastores file for a pipeline: the explicit one, else
    /// `datastores.yaml` beside the pipeline, else in its parent folder.
    pub fn locate(pipeline: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        let dir = pipeline.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let candidates = [
            dir.join("datastores.yaml"),
            dir.join("..").join("datastores.yaml"),
        ];
        for c in &candidates {
            if c.is_file() {
                return Ok(c.clone());
            }
        }
        Err(PlannerError::NoDatastores {
            pipeline: pipeline.to_path_buf(),
            searched: candidates.to_vec(),
        })
    }

    /// The named datastore, or an error that lists the defined ones.
    pub fn get(
        &self,
        pipeline_file: &Path,
        field: &str,
        name: &str,
    ) -> Result<&Datastore, crate::error::Problem> {
        self.stores.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.stores.keys().map(String::as_str).collect();
            let hint = match yaml::closest(name, &known) {
                Some(c) => format!("; did you mean \"{c}\"?"),
                None => format!("; defined: {}", known.join(", ")),
            };
            let _ = pipeline_file;
            crate::error::Problem {
                path: field.to_string(),
                message: format!(
                    "datastore \"{name}\" is not defined in {}{hint}",
                    self.file.display()
                ),
            }
        })
    }
}

fn resolve(
    name: &str,
    cfg: &DatastoreConfig,
    base: &Path,
) -> std::result::Result<Datastore, crate::error::Problem> {
    let path = format!("datastores.{name}");
    let problem = |field: &str, message: String| crate::error::Problem {
        path: format!("{path}.{field}"),
        message,
    };
    let c = &cfg.connection;
    match cfg.kind.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Ok(Datastore::Postgres {
            name: name.to_string(),
            host: c.host.clone().unwrap_or_else(|| "127.0.0.1".to_string()),
            port: c.port.unwrap_or(5432),
            user: c.user.clone().unwrap_or_else(|| "postgres".to_string()),
            password: c.password.clone().filter(|p| !p.expose().is_empty()),
            dbname: c.dbname.clone().ok_or_else(|| {
                problem(
                    "connection.dbname",
                    "a postgres datastore needs dbname".to_string(),
                )
            })?,
            schema: c.schema.clone(),
        }),
        "sqlite" => {
            let p = c.path.clone().ok_or_else(|| {
                problem(
                    "connection.path",
                    "a sqlite datastore needs path (relative to the datastores file)".to_string(),
                )
            })?;
            let p = PathBuf::from(p);
            let p = if p.is_absolute() { p } else { base.join(p) };
            Ok(Datastore::Sqlite {
                name: name.to_string(),
                path: p,
            })
        }
        other if PLANNED_TYPES.contains(&other) => Err(problem(
            "type",
            format!(
                "not supported yet: datastore type \"{other}\" (supported: {})",
                DATASTORE_TYPES.join(", ")
            ),
        )),
        other => Err(problem(
            "type",
            format!(
                "unknown datastore type \"{other}\"; supported: {}",
                DATASTORE_TYPES.join(", ")
            ),
        )),
    }
}

/// Replaces `${VAR}` (or `${VAR:-default}`) with the environment's value. A missing variable is an
/// error naming the line, never an empty string that would fail later.
pub fn substitute_env(
    file: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            let inner = &rest[start + 2..start + 2 + len];
            out.push_str(&rest[..start]);
            if line.trim_start().starts_with('#') {
                out.push_str(&rest[start..start + 3 + len]);
            } else {
                // `${VAR:-default}` falls back like the shell does.
                let (var, default) = match inner.split_once(":-") {
                    Some((v, d)) => (v, Some(d)),
                    None => (inner, None),
                };
                let value = lookup(var)
                    .or_else(|| default.map(str::to_string))
                    .ok_or_else(|| PlannerError::MissingEnv {
                        file: file.to_path_buf(),
                        line: i + 1,
                        var: var.to_string(),
                    })?;
                out.push_str(&value);
            }
            rest = &rest[start + 3 + len..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_reports_missing_vars() {
        let f = Path::new("ds.yaml");
        let ok = substitute_env(f, "a: ${X}\nb: ${X}-${X}\n", |_| Some("v".into())).unwrap();
        assert_eq!(ok, "a: v\nb: v-v\n");
        let defaulted = substitute_env(f, "a: ${X:-fallback}\n", |_| None).unwrap();
        assert_eq!(defaulted, "a: fallback\n");
        let err = substitute_env(f, "a: 1\nb: ${NOPE}\n", |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ds.yaml:2: environment variable NOPE is not set; export it or edit the file"
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
    }
}
