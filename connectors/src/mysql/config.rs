//! A MySQL or MariaDB datastore's `connection:`. A backend's `schema` names
//! the database its table is in; `dbname` is the one used without.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use planner::datastores::{deserialize_port, EnvString, Masked};
use planner::{Connection, ConnectionSpec, Problem, Secret, SqlDialect};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySqlConnectionConfig {
    #[serde(default)]
    pub host: Option<EnvString>,
    #[serde(default, deserialize_with = "deserialize_port")]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<EnvString>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default, alias = "database")]
    pub dbname: Option<EnvString>,
}

/// A resolved MySQL or MariaDB connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MySqlConnection {
    pub host: Masked,
    pub port: u16,
    pub user: Masked,
    pub password: Option<Secret>,
    pub dbname: Masked,
}

impl MySqlConnection {
    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn given(field: &Option<EnvString>) -> Option<String> {
    field
        .as_ref()
        .and_then(EnvString::non_empty)
        .map(str::to_string)
}

impl ConnectionSpec for MySqlConnectionConfig {
    fn resolve(&self, datastore: &str, _base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
        let Some(dbname) = given(&self.dbname) else {
            return Err(vec![Problem {
                path: format!("datastores.{datastore}.connection.dbname"),
                message:
                    "a mysql datastore needs dbname: the database a table without a schema is in"
                        .into(),
            }]);
        };
        Ok(Arc::new(MySqlConnection {
            host: Masked::new(given(&self.host).unwrap_or_else(|| "127.0.0.1".into())),
            port: self.port.unwrap_or(3306),
            user: Masked::new(given(&self.user).unwrap_or_else(|| "root".into())),
            password: self.password.clone(),
            dbname: Masked::new(dbname),
        }))
    }
}

impl Connection for MySqlConnection {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    /// MySQL's databases are what other systems call schemas.
    fn default_schema(&self) -> Option<&str> {
        Some(&self.dbname)
    }

    /// Filters are parsed as SQLite parses them: standard single-quoted
    /// strings with no backslash escapes (the connection sets
    /// NO_BACKSLASH_ESCAPES so MySQL reads them the same), identifiers in
    /// double quotes or backticks; they are written back with backticks.
    fn sql_dialect(&self) -> SqlDialect {
        SqlDialect::Sqlite
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
