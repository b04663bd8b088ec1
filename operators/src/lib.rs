//! The operators of a sync DAG, the one `Operator` trait they implement, and
//! the in-band messages and row-bounded channels that connect them.

pub mod batcher;
pub mod change_detection;
pub mod channel;
pub mod fetch;
pub mod group_checksums;
pub mod group_deletes;
pub mod keys;
pub mod message;
pub mod operator;
pub mod partition_source;
pub mod populate;
pub mod progress;
pub mod regroup;
pub mod track_moves;

pub use channel::{row_channel, ChannelStats, RowReceiver, RowSender};
pub use message::{ChangeSet, Message};
pub use operator::{Operator, OperatorError, Output};
pub use progress::RunProgress;
