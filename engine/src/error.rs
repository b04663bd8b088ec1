use connectors::{ConnectorError, ErrorDomain};
use operators::OperatorError;
use planner::PlannerError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Planner(#[from] PlannerError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// An operator failed; the first failure of a run is the one reported.
    #[error("{operator}: {source}")]
    Operator {
        operator: String,
        #[source]
        source: OperatorError,
    },
    #[error("operator {operator} panicked: {message}")]
    Panicked { operator: String, message: String },
    #[error("cancelled ({0}); committed partitions are kept and the next run resumes")]
    Cancelled(String),
    /// Another process runs the pipeline.
    #[error("pipeline {pipeline} is already running ({holder})")]
    AlreadyRunning { pipeline: String, holder: String },
    /// A table locked against what the run needs to do to it.
    #[error("table {table} is locked: {}, held by {holder}; try again when it is free (or run with --wait)", match wanted {
        crate::lock::TableLockMode::Ddl => "its DDL waits for the runs writing it to end",
        crate::lock::TableLockMode::Write => "its DDL is running, and writes wait for it",
    })]
    TableLocked {
        table: String,
        wanted: crate::lock::TableLockMode,
        holder: String,
    },
    /// A delta watermark that no longer describes the destination.
    #[error("{0}")]
    StaleWatermark(String),
    /// The strategy needs what the destination cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The config switches the pipeline or the strategy off.
    #[error("{0}")]
    Disabled(String),
    #[error("state store {path}: {message}")]
    State { path: String, message: String },
    /// A partition task that cannot be written, read or resolved.
    #[error("partition task: {0}")]
    Task(String),
    /// The Redis server of the work queue or the locks; `at` is its URL
    /// with any password masked.
    #[error("Redis at {at}: {message}")]
    Redis { at: String, message: String },
    /// A worker ran a partition task of the run and it failed, at its
    /// last attempt.
    #[error("partition {partition} failed on worker {worker} (attempt {attempts}): {message}")]
    WorkerFailed {
        worker: String,
        partition: String,
        attempts: u32,
        message: String,
    },
    /// A run status the state store holds but this build does not know.
    #[error(
        "unknown run status \"{0}\" (known: running, completed, failed, cancelled, abandoned)"
    )]
    UnknownRunStatus(String),
}

impl EngineError {
    /// The error as it may be printed anywhere (terminal, JSON, run log,
    /// metrics file, state store): with any URL password masked. Connectors
    /// mask their own; this catches connection text that reached an error by
    /// another road (a datastore field quoted back by a server, say).
    pub fn message(&self) -> String {
        planner::datastores::redact_url_password(&self.to_string()).into_owned()
    }

    /// A retry may succeed: a lost connection, a deadlock or serialization
    /// failure, a server shutting down or busy, Redis out of reach. Config,
    /// schema, type and value errors are not retried.
    pub fn retryable(&self) -> bool {
        match self {
            EngineError::Connector(e) => e.retryable(),
            EngineError::Operator {
                source: OperatorError::Connector(e),
                ..
            } => e.retryable(),
            EngineError::Redis { .. } => true,
            _ => false,
        }
    }

    /// True when the input (config, schema) is at fault rather than the run:
    /// the CLI exits 2 for these and 1 for failed runs.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            EngineError::Planner(_)
            | EngineError::StaleWatermark(_)
            | EngineError::Disabled(_)
            | EngineError::Unsupported(_)
            | EngineError::Task(_) => true,
            EngineError::Connector(e) => {
                e.domain() == ErrorDomain::User && !matches!(e, ConnectorError::Value(_))
            }
            _ => false,
        }
    }
}
