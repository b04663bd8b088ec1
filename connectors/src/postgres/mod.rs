//! PostgreSQL source and sink.
//!
//! Reads use the extended protocol with binary results (values bound as
//! parameters, rows streamed as they arrive). Writes stream binary COPY into a
//! temporary staging table, then merge with `INSERT … ON CONFLICT … DO UPDATE
//! … WHERE … IS DISTINCT FROM …` and write the checkpoint in the same
//! transaction.

pub mod codec;
mod connect;
mod params;
mod sink;
mod source;
mod tls;

pub use connect::connect;
pub use sink::{PostgresSink, CHECKPOINT_TABLE};
pub use source::PostgresSource;
