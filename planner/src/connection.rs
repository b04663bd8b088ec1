//! Connectors as the planner knows them: by type name, through the
//! [`ConnectorTypes`] its caller hands it. Each connector owns its
//! `connection:` config type and what that resolves to; the planner only
//! parses the datastores file around it and keeps the result opaque.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::error::Problem;
use crate::sql_expr::SqlDialect;

/// A datastore's `connection:` as one connector reads it (its own serde
/// type, `deny_unknown_fields`), not yet checked as a whole.
pub trait ConnectionSpec: fmt::Debug {
    /// Checks the fields together (what one needs of another), resolves
    /// paths against `base` (the datastores file's folder), and gives the
    /// connection to open. Problems are located by `datastore`'s path.
    fn resolve(&self, datastore: &str, base: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>>;
}

/// A resolved connection, which only its connector opens.
pub trait Connection: fmt::Debug + Send + Sync + Any {
    /// The connector's type name (`postgres`).
    fn kind(&self) -> &'static str;

    /// The schema of a table written without one.
    fn default_schema(&self) -> Option<&str> {
        None
    }

    /// How SQL written in a pipeline (filters, join conditions) is printed
    /// for this store.
    fn sql_dialect(&self) -> SqlDialect;

    /// The fields as `config show` prints them: secrets masked, passwords in
    /// URLs too.
    fn describe(&self) -> serde_json::Value;

    fn as_any(&self) -> &dyn Any;
}

/// One connector's entry in the registry.
pub trait ConnectorType: Send + Sync {
    /// The `type:` a datastore names it by.
    fn name(&self) -> &'static str;

    /// Other accepted spellings (`postgresql`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// Reads a `connection:` mapping into this connector's config type.
    /// Errors keep the YAML parser's line and column.
    fn parse_connection(
        &self,
        d: &mut dyn erased_serde::Deserializer<'_>,
    ) -> Result<Box<dyn ConnectionSpec>, erased_serde::Error>;
}

/// The connectors a process knows, by type name.
#[derive(Clone, Default)]
pub struct ConnectorTypes {
    types: Vec<Arc<dyn ConnectorType>>,
}

/// Types the spec names that no connector handles yet.
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

impl ConnectorTypes {
    pub fn new(types: Vec<Arc<dyn ConnectorType>>) -> Self {
        ConnectorTypes { types }
    }

    /// The connector a datastore's `type:` names (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&dyn ConnectorType> {
        let name = name.to_ascii_lowercase();
        self.types
            .iter()
            .find(|t| t.name() == name || t.aliases().contains(&name.as_str()))
            .map(|t| t.as_ref())
    }

    /// Every registered type name, for messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.types.iter().map(|t| t.name()).collect()
    }

    /// Whether `name` is a type the spec promises that has no connector yet.
    pub fn is_planned(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        PLANNED_TYPES.contains(&name.as_str()) && self.get(&name).is_none()
    }
}

impl fmt::Debug for ConnectorTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Stand-ins for the planner's own tests, which link no connector: a type
/// of any name that accepts any `connection:` and resolves to a store of
/// that kind.
pub mod stand_in {
    use super::*;

    /// A connector type named `name`, speaking `dialect`.
    pub struct StandInType {
        pub name: &'static str,
        pub dialect: SqlDialect,
        pub default_schema: Option<&'static str>,
    }

    /// The stand-ins for `postgres` and `sqlite`.
    pub fn types() -> ConnectorTypes {
        ConnectorTypes::new(vec![
            Arc::new(StandInType {
                name: "postgres",
                dialect: SqlDialect::Postgres,
                default_schema: Some("public"),
            }),
            Arc::new(StandInType {
                name: "sqlite",
                dialect: SqlDialect::Sqlite,
                default_schema: None,
            }),
        ])
    }

    #[derive(Debug, Clone)]
    struct StandInSpec(StandInConnection);

    /// What a stand-in resolves to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct StandInConnection {
        pub kind: &'static str,
        pub dialect: SqlDialect,
        pub default_schema: Option<String>,
    }

    impl ConnectorType for StandInType {
        fn name(&self) -> &'static str {
            self.name
        }

        fn parse_connection(
            &self,
            d: &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<Box<dyn ConnectionSpec>, erased_serde::Error> {
            let fields: std::collections::BTreeMap<String, serde_norway::Value> =
                erased_serde::deserialize(d)?;
            let schema = fields
                .get("schema")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            Ok(Box::new(StandInSpec(StandInConnection {
                kind: self.name,
                dialect: self.dialect,
                default_schema: schema.or(self.default_schema.map(str::to_string)),
            })))
        }
    }

    impl ConnectionSpec for StandInSpec {
        fn resolve(&self, _: &str, _: &Path) -> Result<Arc<dyn Connection>, Vec<Problem>> {
            Ok(Arc::new(self.0.clone()))
        }
    }

    impl Connection for StandInConnection {
        fn kind(&self) -> &'static str {
            self.kind
        }

        fn default_schema(&self) -> Option<&str> {
            self.default_schema.as_deref()
        }

        fn sql_dialect(&self) -> SqlDialect {
            self.dialect
        }

        fn describe(&self) -> serde_json::Value {
            serde_json::json!({ "schema": self.default_schema })
        }

        fn as_any(&self) -> &dyn Any {
            self
        }
    }
}
