//! Pipeline configuration, validation, partition planning and the plan of operators.

pub mod column_ref;
pub mod config;
pub mod connection;
pub mod datastores;
pub mod error;
pub mod fingerprint;
pub mod global;
pub mod model;
pub mod partition;
pub mod plan;
pub mod sql_expr;
pub mod types;
pub mod yaml;

pub use column_ref::ColumnRef;
pub use connection::{Connection, ConnectionSpec, ConnectorType, ConnectorTypes};
pub use datastores::{Datastore, Datastores, Secret};
pub use error::{PlannerError, Problem};
pub use fingerprint::SyncFingerprint;
pub use model::{Pipeline, StrategyKind};
pub use plan::{OperatorSpec, Plan};
pub use sql_expr::{SqlDialect, SqlExpr};
