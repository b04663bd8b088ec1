//! Pipeline configuration, validation, partition planning and the plan of operators.

pub mod partition;
pub mod types;
pub mod config;
pub mod datastores;
pub mod error;
pub mod model;
pub mod plan;
pub mod yaml;

pub use datastores::{Datastore, Datastores, Secret};
pub use error::{PlannerError, Problem};
pub use model::{Pipeline, StrategyKind};
pub use plan::{OperatorSpec, Plan};
