//! PostgreSQL source and sink.
//!
//! Reads use the extended protocol with binary results (values bound as
//! parameters, rows streamed as they arrive). Writes stream binary COPY into a
//! temporary staging table, then merge with `INSERT … ON CONFLICT … DO UPDATE
//! … WHERE … IS DISTINCT FROM …` and write the checkpoint in the same
//! transaction.

mod catalog;
pub mod codec;
mod config;
mod connect;
mod connector;
mod params;
mod sink;
mod source;
mod tls;
mod url;

pub use catalog::postgres_type;
pub use config::{PgTls, PostgresConnection, PostgresConnectionConfig, SslMode};
pub use connect::connect;
pub use connector::PostgresConnector;
pub use sink::{PostgresSink, CHECKPOINT_TABLE};
pub use source::PostgresSource;
