//! SQLite source and sink: the embedded default that needs no server.
//!
//! rusqlite is blocking, so each connection lives on a thread of its own
//! (`thread.rs`) and every call is sent there.

pub mod codec;
mod connect;
mod params;
mod sink;
mod source;
mod thread;

pub use connect::{in_transaction, open_connection};
pub use sink::{SqliteSink, CHECKPOINT_TABLE};
pub use source::SqliteSource;
