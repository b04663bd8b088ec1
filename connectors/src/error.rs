use thiserror::Error;

/// Whether a failure is the user's to fix (config, data, schema) or the
/// system's (network, server), and so whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    User,
    System,
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
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    #[error("SQLite error: {0}")]
    Sqlite(String),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Other(String),
}

impl ConnectorError {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ConnectorError::Unreachable(_) | ConnectorError::Postgres(_) => ErrorDomain::System,
            ConnectorError::Sqlite(_) | ConnectorError::Other(_) | ConnectorError::Arrow(_) => {
                ErrorDomain::System
            }
            ConnectorError::Schema(_)
            | ConnectorError::Config(_)
            | ConnectorError::Value(_)
            | ConnectorError::NullKey { .. }
            | ConnectorError::Unsupported(_) => ErrorDomain::User,
        }
    }

    /// A retry may succeed (connection drops, server restarts).
    pub fn retryable(&self) -> bool {
        matches!(self, ConnectorError::Unreachable(_))
    }
}

impl From<tokio_postgres::Error> for ConnectorError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The driver's Display for server errors is just "db error"; the
        // server's own message is what the user needs.
        match e.as_db_error() {
            Some(db) => {
                let mut msg = db.message().to_string();
                if let Some(detail) = db.detail() {
                    msg.push_str(&format!(" ({detail})"));
                }
                ConnectorError::Postgres(msg)
            }
            None => ConnectorError::Postgres(e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for ConnectorError {
    fn from(e: rusqlite::Error) -> Self {
        ConnectorError::Sqlite(e.to_string())
    }
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
