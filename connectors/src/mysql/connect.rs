//! Opening a connection, and MySQL's errors as the connector's.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use planner::Datastore;

use super::MySqlConnection;
use crate::error::ErrorKind;
use crate::{ConnectorError, Result};

/// Every session reads and writes values the same way whatever the
/// server's defaults: strict (a value that does not fit fails instead of
/// being cut), standard strings (no backslash escapes, as filters are
/// parsed), UTC (timestamptz values are stored as UTC wall clocks), 4-byte
/// UTF-8.
const SESSION_SETUP: &[&str] = &[
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION time_zone = '+00:00'",
    "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
];

pub fn connection_of(datastore: &Datastore) -> Result<&MySqlConnection> {
    datastore.connection_as::<MySqlConnection>().ok_or_else(|| {
        ConnectorError::Config(format!(
            "datastore \"{}\" is not a mysql datastore",
            datastore.name()
        ))
    })
}

/// A connection to the datastore's server, its default database `dbname`.
pub async fn connect(datastore: &Datastore) -> Result<Conn> {
    let c = connection_of(datastore)?;
    let opts = OptsBuilder::default()
        .ip_or_hostname(String::from(&*c.host))
        .tcp_port(c.port)
        .user(Some(String::from(&*c.user)))
        .pass(c.password.as_ref().map(|p| p.expose().to_string()))
        .db_name(Some(String::from(&*c.dbname)))
        .prefer_socket(false)
        .setup(SESSION_SETUP.to_vec());
    Conn::new(opts).await.map_err(|e| match e {
        mysql_async::Error::Io(_) => ConnectorError::Unreachable(format!(
            "cannot connect to MySQL at {} (datastore \"{}\"): {e}",
            c.address(),
            datastore.name()
        )),
        e => mysql_error(e),
    })
}

/// Runs each statement of `sql` in order.
pub async fn run_all(conn: &mut Conn, sql: &[String]) -> Result<()> {
    for s in sql {
        conn.query_drop(s).await.map_err(mysql_error)?;
    }
    Ok(())
}

/// Whose fault an error the server or driver reported is.
pub fn mysql_error(e: mysql_async::Error) -> ConnectorError {
    let kind = match &e {
        mysql_async::Error::Server(s) => match s.code {
            // Lock wait timeout, deadlock, too many connections, server
            // shutting down.
            1205 | 1213 | 1040 | 1053 => ErrorKind::Transient,
            // Unknown column or table, syntax, data too long, out of range,
            // incorrect value, duplicate key, access denied.
            1054 | 1146 | 1064 | 1406 | 1264 | 1292 | 1366 | 1062 | 1045 | 1044 | 1049 => {
                ErrorKind::User
            }
            _ => ErrorKind::System,
        },
        mysql_async::Error::Io(_) => ErrorKind::Transient,
        _ => ErrorKind::System,
    };
    let message = match &e {
        mysql_async::Error::Server(s) => format!("{} (error {})", s.message, s.code),
        e => e.to_string(),
    };
    ConnectorError::Database {
        connector: "MySQL",
        kind,
        message,
        source: Some(Box::new(e)),
    }
}

/// The server error code of `e`, if the server reported it.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}
