//! A SQLite datastore's `connection:`: the database file.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use planner::datastores::{redact_url_password, relative_to, EnvString};
use planner::{Connection, ConnectionSpec, Problem, SqlDialect};
use serde::Deserialize;

/// `connection:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConnectionConfig {
    /// The database file, relative to the datastores file.
    #[serde(default)]
    pub path: Option<EnvString>,
}

/// A resolved SQLite connection: the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConnection {
    pub path: PathBuf,
}

impl ConnectionSpec for SqliteConnectionConfig {
    fn resolve(&self, datastore: &str, base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
        match self.path.as_ref().and_then(EnvString::non_empty) {
            Some(p) => Ok(Arc::new(SqliteConnection {
                path: relative_to(base, p),
            })),
            None => Err(vec![Problem {
                path: format!("datastores.{datastore}.connection.path"),
                message: "a sqlite datastore needs path (relative to the datastores file)".into(),
            }]),
        }
    }
}

impl Connection for SqliteConnection {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn sql_dialect(&self) -> SqlDialect {
        SqlDialect::Sqlite
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "path": redact_url_password(&self.path.display().to_string()) })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
