//! Opening a SQLite file: the datastore's path, the connection's flags and
//! settings.

use std::path::{Path, PathBuf};

use planner::datastores::Datastore;
use rusqlite::{Connection, OpenFlags};

use super::config::SqliteConnection;
use super::thread::{ConnectionThread, OnLastDrop};
use crate::{ConnectorError, Result};

/// A connection to `path` (see `open_connection`) on a thread of its own.
pub(super) async fn open_on_thread(
    path: &Path,
    create: bool,
) -> Result<ConnectionThread<ConnectorError>> {
    let path = path.to_path_buf();
    // Dropped on async threads, which must not wait for a join.
    ConnectionThread::open("SQLite connection's", OnLastDrop::Detach, move || {
        open_connection(&path, create)
    })
    .await
}

pub(super) fn datastore_path(ds: &Datastore) -> Result<PathBuf> {
    match ds.connection_as::<SqliteConnection>() {
        Some(c) => Ok(c.path.clone()),
        None => Err(ConnectorError::Other(format!(
            "datastore \"{}\" is not sqlite",
            ds.name()
        ))),
    }
}

/// Opens a SQLite file. Sources must exist; sinks may create it.
pub fn open_connection(path: &Path, create: bool) -> Result<Connection> {
    if create {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                ConnectorError::Unreachable(format!(
                    "cannot create folder {} for SQLite database: {e}",
                    dir.display()
                ))
            })?;
        }
    } else if !path.exists() {
        return Err(ConnectorError::Unreachable(format!(
            "SQLite database {} does not exist",
            path.display()
        )));
    }
    let flags = if create {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        ConnectorError::Unreachable(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // By default SQLite reads a double-quoted name that matches no column as
    // a string literal: a misspelt source column would copy its own name into
    // every row. Quoted identifiers must be identifiers.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    if create {
        // WAL lets readers (and `synchub` checks) run beside a writer.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

/// Whether the connection has an open transaction (for tests of failure paths).
pub fn in_transaction(conn: &Connection) -> bool {
    !conn.is_autocommit()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_missing_source_file_is_reported_by_open() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let err = super::open_on_thread(&missing, false).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("SQLite database {} does not exist", missing.display())
        );
    }
}
