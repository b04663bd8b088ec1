//! A run's status: what the state store keeps, the run summary, metrics
//! file and every report print, always as the same lowercase word.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Going, or its process died: it stays so until the next run of its
    /// strategy resumes it. (The default: a summary not filled in yet.)
    #[default]
    Running,
    Completed,
    /// Ended by an error; the next run of its strategy resumes it.
    Failed,
    /// Stopped by SIGINT or SIGTERM; the next run of its strategy resumes it.
    Cancelled,
    /// Its checkpoints no longer described the destination, and a new run
    /// started over.
    Abandoned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Abandoned,
    ];

    /// The word stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// Whether the run has ended, one way or another.
    pub fn is_finished(self) -> bool {
        self != RunStatus::Running
    }

    /// Whether the next run of its strategy may take it up again: it did
    /// not complete and was not given up.
    pub fn is_resumable(self) -> bool {
        !matches!(self, RunStatus::Completed | RunStatus::Abandoned)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = EngineError;

    /// The status a store wrote; anything else is named in the error.
    fn from_str(s: &str) -> Result<RunStatus, EngineError> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| EngineError::UnknownRunStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_it_is_written_and_names_what_it_does_not_know() {
        for status in RunStatus::ALL {
            assert_eq!(status.to_string().parse::<RunStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        assert_eq!(
            serde_json::to_string(&RunStatus::Cancelled).unwrap(),
            "\"cancelled\""
        );
        assert_eq!(
            "Completed".parse::<RunStatus>().unwrap_err().to_string(),
            "unknown run status \"Completed\" (known: running, completed, failed, cancelled, abandoned)"
        );
    }
}
