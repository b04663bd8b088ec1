//! What every part of a run shares: its id, its progress counters, and its
//! cancellation. The library installs no signal handler: its caller (the
//! CLI, on SIGINT or SIGTERM) cancels a run through [`Cancel`].

use std::sync::{Arc, Mutex};

use operators::RunProgress;
use tokio_util::sync::CancellationToken;

/// A run's cancellation: a token plus the reason given with it.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Cancel {
    pub fn cancel(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Resolves once cancelled, with the reason.
    pub async fn cancelled(&self) -> String {
        self.token.cancelled().await;
        self.reason().unwrap_or_else(|| "cancelled".to_string())
    }
}

/// One run as its coordinator and executors see it.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: String,
    pub cancel: Cancel,
    /// Rows and partitions so far, summed over the executors.
    pub progress: Arc<RunProgress>,
}
