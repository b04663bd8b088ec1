//! A datastore's `connection:` as its file writes it, `${VAR}` references
//! unexpanded, so another process (a worker running a partition task) can
//! resolve it again from its own environment. It never holds a variable's
//! value: a task carrying it may wait in a queue that others can read.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{env, Datastore};
use crate::connection::ConnectorTypes;
use crate::error::{PlannerError, Problem};

/// Field names whose value is a secret whatever the connector: written in
/// clear, such a value would travel with every task.
pub const SECRET_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "access_key",
    "secret_key",
    "api_key",
];

/// One datastore's connection as written, with what resolving it needs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenConnection {
    /// The connector's type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The `connection:` mapping exactly as written.
    pub connection: serde_json::Value,
    /// The datastores file's folder, absolute: relative paths in the
    /// connection are resolved against it.
    pub base: PathBuf,
}

impl fmt::Debug for WrittenConnection {
    // The mapping may hold a secret written in clear; only its shape shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrittenConnection")
            .field("kind", &self.kind)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl WrittenConnection {
    /// `connection` of a datastores file whose folder is `base`.
    pub fn new(kind: &str, connection: serde_json::Value, base: &Path) -> WrittenConnection {
        // `datastores.yaml` has the empty path as its folder: the current one.
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        WrittenConnection {
            kind: kind.to_string(),
            connection,
            base: std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf()),
        }
    }

    /// The datastore `name`, resolved as its file would be, with `${VAR}`s
    /// looked up with `lookup` (a worker: its own environment).
    pub fn resolve(
        &self,
        name: &str,
        types: &ConnectorTypes,
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Datastore, PlannerError> {
        let at = format!("datastores.{name}.connection");
        let invalid = |problems: Vec<Problem>| PlannerError::Invalid {
            file: PathBuf::from("partition task"),
            problems,
        };
        let problem = |message: String| {
            invalid(vec![Problem {
                path: at.clone(),
                message,
            }])
        };
        let connector = types.get(&self.kind).ok_or_else(|| {
            problem(format!(
                "datastore type \"{}\" has no connector in this build (supported: {})",
                self.kind,
                types.names().join(", ")
            ))
        })?;
        let spec = {
            let _lookup = env::LookupScope::install(Rc::new(lookup));
            let mut erased = <dyn erased_serde::Deserializer>::erase(self.connection.clone());
            connector.parse_connection(&mut erased).map_err(|e| {
                let message = e.to_string();
                problem(match env::missing_var(&message) {
                    Some(var) => format!(
                        "environment variable {var} is not set (the task names it; set it where the task runs)"
                    ),
                    None => super::redact_url_password(&message).into_owned(),
                })
            })?
        };
        let connection = spec.resolve(name, &self.base).map_err(invalid)?;
        Ok(Datastore::new(name, connection).with_written(self.clone()))
    }

    /// Where the connection holds a secret in clear rather than as a
    /// `${VAR}` reference: a field of [`SECRET_FIELDS`], or the password
    /// of a URL. `None` when every secret is a reference.
    pub fn secret_in_clear(&self) -> Option<String> {
        secret_in_clear(&self.connection, "connection")
    }
}

fn secret_in_clear(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, v)| {
            let at = format!("{path}.{key}");
            let named_secret = SECRET_FIELDS.contains(&key.to_ascii_lowercase().as_str());
            match v {
                serde_json::Value::String(s) if named_secret && !only_references(s) => Some(at),
                serde_json::Value::Number(_) if named_secret => Some(at),
                _ => secret_in_clear(v, &at),
            }
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| secret_in_clear(v, &format!("{path}[{i}]"))),
        serde_json::Value::String(s) if url_passwords(s).any(|p| !only_references(p)) => {
            Some(path.to_string())
        }
        _ => None,
    }
}

/// Whether `text` is nothing but `${VAR}` references (an empty `:-`
/// default allowed: a default would be a value in clear).
fn only_references(text: &str) -> bool {
    let mut rest = text;
    while !rest.is_empty() {
        let Some(tail) = rest.strip_prefix("${") else {
            return false;
        };
        let Some(end) = tail.find('}') else {
            return false;
        };
        let inner = &tail[..end];
        let name = inner.strip_suffix(":-").unwrap_or(inner);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        rest = &tail[end + 1..];
    }
    true
}

/// The password of every `scheme://user:password@` in `text`, found as
/// [`super::redact_url_password`] finds them.
fn url_passwords(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("://").filter_map(move |(i, _)| {
        let tail = &text[i + 3..];
        let url = &tail[..tail.find(char::is_whitespace).unwrap_or(tail.len())];
        let at = url.rfind('@')?;
        let colon = url[..at].find(':')?;
        Some(&url[colon + 1..at])
    })
}

/// The `connection:` of each datastore of a datastores file's `text`, as
/// written; `None` for one whose mapping is not plain data (a YAML tag, a
/// key that is not a string).
pub(super) fn written_connections(
    text: &str,
) -> std::collections::BTreeMap<String, Option<serde_json::Value>> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(file) = serde_norway::from_str::<serde_norway::Value>(text) else {
        return out;
    };
    let Some(stores) = file.get("datastores").and_then(|d| d.as_mapping()) else {
        return out;
    };
    for (name, store) in stores {
        let Some(name) = name.as_str() else { continue };
        let connection = match store.get("connection") {
            Some(c) => serde_json::to_value(c).ok().filter(|v| v.is_object()),
            None => Some(serde_json::Value::Object(Default::default())),
        };
        out.insert(name.to_string(), connection);
    }
    out
}

/// A datastore carrying how it was written, for [`Datastore::written`].
impl Datastore {
    pub fn with_written(mut self, written: WrittenConnection) -> Datastore {
        self.written = Some(Arc::new(written));
        self
    }

    /// The connection as written, when it was read from a datastores file.
    pub fn written(&self) -> Option<&WrittenConnection> {
        self.written.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(connection: serde_json::Value) -> WrittenConnection {
        WrittenConnection::new("postgres", connection, Path::new("/etc/synchub"))
    }

    #[test]
    fn a_secret_in_clear_is_found_and_references_are_not() {
        let fine = written(json!({
            "host": "db",
            "password": "${PGPASSWORD}",
            "url": "postgresql://app:${PGPASSWORD}@db/app",
            "user": "${PGUSER:-app}",
        }));
        assert_eq!(fine.secret_in_clear(), None);
        assert_eq!(
            written(json!({"password": "hunter2"})).secret_in_clear(),
            Some("connection.password".into())
        );
        assert_eq!(
            written(json!({"password": "${PGPASSWORD:-hunter2}"})).secret_in_clear(),
            Some("connection.password".into())
        );
        assert_eq!(
            written(json!({"url": "postgresql://app:hunter2@db/app"})).secret_in_clear(),
            Some("connection.url".into())
        );
        assert_eq!(
            written(json!({"Password": 1234})).secret_in_clear(),
            Some("connection.Password".into())
        );
        assert_eq!(
            written(json!({"password": "${A}${B}"})).secret_in_clear(),
            None
        );
    }

    #[test]
    fn connections_are_kept_as_written() {
        let text = "datastores:\n  pg:\n    type: postgres\n    connection:\n      host: ${HOST}\n      port: 5432\n  bare:\n    type: sqlite\n";
        let found = written_connections(text);
        assert_eq!(found["pg"], Some(json!({"host": "${HOST}", "port": 5432})));
        assert_eq!(found["bare"], Some(json!({})));
    }

    #[test]
    fn debug_never_shows_the_mapping() {
        let w = written(json!({"password": "hunter2"}));
        assert!(!format!("{w:?}").contains("hunter2"));
    }
}
