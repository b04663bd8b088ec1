//! MySQL and MariaDB source and sink (`type: mysql`, or `mariadb`), on the
//! mysql_async driver. A backend's `schema` names the database.

mod codec;
mod config;
mod connect;
mod connector;
mod sink;
mod source;

pub use config::{MySqlConnection, MySqlConnectionConfig};
pub use connect::connect;
pub use connector::{mysql_type, MySqlConnector};
pub use sink::{MySqlSink, CHECKPOINT_TABLE};
pub use source::MySqlSource;
