use thiserror::Error;

/// Whether a failure is the user's to fix (config, data, schema) or the
/// system's (network, server), and so whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    User,
    System,
}

/// Whose fault a database's error is, which decides whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The config, the data or the schema must change.
    User,
    /// The server or the machine failed; running again may not help.
    System,
    /// Passing: a lost connection, a deadlock, a busy database. A retry
    /// can succeed.
    Transient,
}

#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The destination or source cannot be reached; the message names
    /// host:port (never a password).
    #[error("{0}")]
    Unreachable(String),
    /// The connection's settings cannot work (a certificate file that cannot
    /// be read, a server certificate the sslmode refuses): the datastore
    /// must change, so retrying does not help.
    #[error("{0}")]
    Config(String),
    /// Table or column layout does not match the pipeline.
    #[error("{0}")]
    Schema(String),
    /// A value cannot be represented in the destination type.
    #[error("{0}")]
    Value(String),
    /// A unique (key) column read as NULL, at `row` of its batch; the
    /// reader that knows the partition names it (see `Fetch`).
    #[error("unique column \"{column}\" is NULL in row {row} of a page read from the source")]
    NullKey { column: String, row: usize },
    /// A type the connector cannot read or write yet.
    #[error("{0}")]
    Unsupported(String),
    /// What a database or its driver reported, with the connector that
    /// met it and whose fault it is.
    #[error("{connector} error: {message}")]
    Database {
        /// The system's name as users know it (`PostgreSQL`).
        connector: &'static str,
        kind: ErrorKind,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Other(String),
}

impl ConnectorError {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ConnectorError::Database {
                kind: ErrorKind::User,
                ..
            } => ErrorDomain::User,
            ConnectorError::Unreachable(_)
            | ConnectorError::Database { .. }
            | ConnectorError::Other(_)
            | ConnectorError::Arrow(_) => ErrorDomain::System,
            ConnectorError::Schema(_)
            | ConnectorError::Config(_)
            | ConnectorError::Value(_)
            | ConnectorError::NullKey { .. }
            | ConnectorError::Unsupported(_) => ErrorDomain::User,
        }
    }

    /// A retry may succeed (connection drops, server restarts).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Unreachable(_)
                | ConnectorError::Database {
                    kind: ErrorKind::Transient,
                    ..
                }
        )
    }

    /// An error PostgreSQL reported, with no driver error behind it.
    pub fn postgres(message: impl Into<String>) -> Self {
        ConnectorError::Database {
            connector: "PostgreSQL",
            kind: ErrorKind::System,
            message: message.into(),
            source: None,
        }
    }
}

/// Whose fault a PostgreSQL error is, by its SQLSTATE class.
fn postgres_kind(code: &str) -> ErrorKind {
    match code.get(..2) {
        // Connection exception, insufficient resources, operator
        // intervention (server shutting down), transaction rollback
        // (serialization failure, deadlock).
        Some("08" | "53" | "57" | "40") => ErrorKind::Transient,
        // Data exception, integrity constraint, invalid authorization,
        // syntax error or access rule violation (a missing column, say).
        Some("22" | "23" | "28" | "42") => ErrorKind::User,
        _ => ErrorKind::System,
    }
}

impl From<tokio_postgres::Error> for ConnectorError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The driver's Display for server errors is just "db error"; the
        // server's own message is what the user needs.
        let (message, kind) = match e.as_db_error() {
            Some(db) => {
                let mut msg = db.message().to_string();
                if let Some(detail) = db.detail() {
                    msg.push_str(&format!(" ({detail})"));
                }
                (msg, postgres_kind(db.code().code()))
            }
            // A closed connection or an I/O error: no SQLSTATE.
            None if e.is_closed() => (e.to_string(), ErrorKind::Transient),
            None => (e.to_string(), ErrorKind::System),
        };
        ConnectorError::Database {
            connector: "PostgreSQL",
            kind,
            message,
            source: Some(Box::new(e)),
        }
    }
}

impl From<crate::sqlite::ThreadFailure> for ConnectorError {
    fn from(e: crate::sqlite::ThreadFailure) -> ConnectorError {
        ConnectorError::Other(e.to_string())
    }
}

impl From<rusqlite::Error> for ConnectorError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let kind = match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::Transient,
            Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch) => ErrorKind::User,
            _ => ErrorKind::System,
        };
        ConnectorError::Database {
            connector: "SQLite",
            kind,
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_errors_say_whose_fault_they_are() {
        for (code, kind) in [
            ("08006", ErrorKind::Transient),
            ("40P01", ErrorKind::Transient),
            ("57P01", ErrorKind::Transient),
            ("23505", ErrorKind::User),
            ("42703", ErrorKind::User),
            ("XX000", ErrorKind::System),
        ] {
            assert_eq!(postgres_kind(code), kind, "{code}");
        }
    }

    #[test]
    fn sqlite_busy_is_transient_and_retryable() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        let e = ConnectorError::from(busy);
        assert!(e.retryable());
        assert_eq!(e.domain(), ErrorDomain::System);
        assert_eq!(e.to_string(), "SQLite error: database is locked");
        assert!(std::error::Error::source(&e).is_some());
        let constraint = ConnectorError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        ));
        assert!(!constraint.retryable());
        assert_eq!(constraint.domain(), ErrorDomain::User);
    }
}
