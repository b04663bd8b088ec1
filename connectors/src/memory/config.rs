//! A memory datastore's `connection:`: which store of the process.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use planner::{Connection, ConnectionSpec, Problem, SqlDialect};
use serde::Deserialize;

/// `connection:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConnectionConfig {
    /// The store's name; datastores naming the same store share tables.
    #[serde(default)]
    pub store: Option<String>,
    /// `false`: act as a destination that cannot commit rows and their
    /// checkpoint in one transaction (ClickHouse, Delta): rows are appended
    /// under the partition's commit token, the checkpoint is recorded
    /// after. For tests of the engine's idempotent-commit path.
    #[serde(default = "yes")]
    pub transactional: bool,
}

fn yes() -> bool {
    true
}

/// A resolved memory connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConnection {
    pub store: String,
    pub transactional: bool,
}

impl ConnectionSpec for MemoryConnectionConfig {
    fn resolve(&self, datastore: &str, _base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
        Ok(Arc::new(MemoryConnection {
            store: self.store.clone().unwrap_or_else(|| datastore.to_string()),
            transactional: self.transactional,
        }))
    }
}

impl Connection for MemoryConnection {
    fn kind(&self) -> &'static str {
        "memory"
    }

    /// Filters and join conditions are not evaluated by this connector;
    /// the dialect only decides how they would print.
    fn sql_dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "store": self.store, "transactional": self.transactional })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
