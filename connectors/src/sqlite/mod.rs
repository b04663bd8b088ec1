//! SQLite source and sink: the embedded default that needs no server.
//!
//! rusqlite is blocking, so each connection lives on a thread of its own
//! (`thread.rs`) and every call is sent there.

mod catalog;
pub mod codec;
mod config;
mod connect;
mod connector;
mod log_folder;
pub(crate) mod params;
mod sink;
mod source;
pub mod thread;

pub use catalog::sqlite_type;
pub use config::{SqliteConnection, SqliteConnectionConfig};
pub use connect::{in_transaction, open_connection};
pub use connector::SqliteConnector;
pub use sink::{SqliteSink, CHECKPOINT_TABLE};
pub use source::SqliteSource;
pub use thread::{ConnectionThread, OnLastDrop, ThreadFailure};
