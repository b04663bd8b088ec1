//! An in-memory source and sink: tables held by the process, for engine
//! tests that need no database. It registers as every connector does
//! ([`crate::registry`]), reads and writes through the same traits, and
//! leaves hashing to the generic path (no pushdown), so it is also the
//! proof that a connector needs nothing more than those.
//!
//! A datastore `{type: memory, connection: {store: NAME}}` names a store;
//! its tables live until the process ends. Tests fill and read them with
//! [`put_table`] and [`table_rows`].

mod config;
mod connector;
mod sink;
mod source;
mod store;

pub use config::{MemoryConnection, MemoryConnectionConfig};
pub use connector::MemoryConnector;
pub use sink::MemorySink;
pub use source::MemorySource;
#[cfg(feature = "fault-injection")]
pub use store::lose_next_checkpoint;
pub use store::{put_table, table_rows};
