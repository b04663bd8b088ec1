//! A ClickHouse datastore's `connection:`: the HTTP interface's host and
//! port, a user and password, and the database a table without a schema is
//! in.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use planner::datastores::{deserialize_port, EnvString, Masked};
use planner::{Connection, ConnectionSpec, Problem, Secret, SqlDialect};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConnectionConfig {
    #[serde(default)]
    pub host: Option<EnvString>,
    /// The HTTP port (8123 by default), not the native protocol's 9000.
    #[serde(default, deserialize_with = "deserialize_port")]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<EnvString>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default, alias = "dbname")]
    pub database: Option<EnvString>,
}

/// A resolved ClickHouse connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClickHouseConnection {
    pub host: Masked,
    pub port: u16,
    pub user: Masked,
    pub password: Option<Secret>,
    pub database: Masked,
}

impl ClickHouseConnection {
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

impl ConnectionSpec for ClickHouseConnectionConfig {
    fn resolve(&self, datastore: &str, _base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
        let Some(database) = given(&self.database) else {
            return Err(vec![Problem {
                path: format!("datastores.{datastore}.connection.database"),
                message: "a clickhouse datastore needs database: the database a table without a schema is in"
                    .into(),
            }]);
        };
        Ok(Arc::new(ClickHouseConnection {
            host: Masked::new(given(&self.host).unwrap_or_else(|| "127.0.0.1".into())),
            port: self.port.unwrap_or(8123),
            user: Masked::new(given(&self.user).unwrap_or_else(|| "default".into())),
            password: self.password.clone(),
            database: Masked::new(database),
        }))
    }
}

impl Connection for ClickHouseConnection {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }

    fn default_schema(&self) -> Option<&str> {
        Some(&self.database)
    }

    /// Filters are not read from a ClickHouse source yet (the source
    /// refuses them); the dialect only parses them.
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
