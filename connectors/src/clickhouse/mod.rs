//! ClickHouse source and sink (`type: clickhouse`), over the HTTP
//! interface in the RowBinary format, which ClickHouse 18.16 (Debian's)
//! already speaks. A backend's `schema` names the database.
//!
//! ClickHouse has no transactions: a partition's rows go in as one INSERT
//! into a ReplacingMergeTree (a version column decides which copy of a key
//! wins), deletes as an `ALTER TABLE … DELETE` mutation that the sink waits
//! for, and the checkpoint afterwards into a side table; see [`sink`] for
//! why a crash between the two neither loses nor doubles a row.

mod client;
mod codec;
mod config;
mod connector;
mod sink;
mod source;

pub use client::Client;
pub use config::{ClickHouseConnection, ClickHouseConnectionConfig};
pub use connector::ClickHouseConnector;
pub use sink::{ClickHouseSink, CHECKPOINT_TABLE, VERSION_COLUMN};
pub use source::ClickHouseSource;
