//! Delta Lake tables as destination and source, on deltalake (delta-rs)
//! and DataFusion: a datastore is a folder of tables (`uri`), a table is a
//! folder under it.

mod config;
mod connector;
pub mod s3;
mod sink;
mod source;
mod table;

pub use config::{DeltaConnection, DeltaConnectionConfig};
pub use connector::DeltaConnector;
pub use sink::{app_id, DeltaSink};
pub use source::DeltaSource;
