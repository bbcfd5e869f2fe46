//! Responses being generated right now in this process, per thread, so
//! that a cancel request can reach the task generating it.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// What a cancelled generation did with its turn.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CancelOutcome {
    /// What was kept.
    pub mode: CancelMode,
    /// Seconds from the start of the response to the cancel.
    pub elapsed_seconds: f64,
    /// The turn's user input was not saved.
    pub user_message_deleted: bool,
    /// The assistant's answer was not saved.
    pub assistant_response_deleted: bool,
    /// A partial assistant answer was saved.
    pub partial_content_saved: bool,
}

/// What a cancel kept of the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// Cancelled within the quick-cancel window: nothing was kept.
    QuickEdit,
    /// Cancelled later: the user input and the partial answer were saved.
    KeepPartial,
}

impl CancelMode {
    /// `quick_edit` or `keep_partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuickEdit => "quick_edit",
            Self::KeepPartial => "keep_partial",
        }
    }
}

/// A cancel request: the generation answers on the enclosed channel.
pub type CancelRequest = oneshot::Sender<CancelOutcome>;

struct Entry {
    response_id: String,
    cancel: oneshot::Sender<CancelRequest>,
}

/// The registry (one per process).
#[derive(Default)]
pub struct Running {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// Registers a generation for `(organization, thread)`; the receiver
    /// delivers a cancel request if one comes.
    pub fn register(
        &self,
        organization: &str,
        thread: &str,
        response_id: &str,
    ) -> oneshot::Receiver<CancelRequest> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut map) = self.entries.lock() {
            map.insert(
                (organization.to_string(), thread.to_string()),
                Entry {
                    response_id: response_id.to_string(),
                    cancel: tx,
                },
            );
        }
        rx
    }

    /// Forgets the generation (when it ends), if it is still `response_id`'s.
    pub fn finish(&self, organization: &str, thread: &str, response_id: &str) {
        if let Ok(mut map) = self.entries.lock() {
            let key = (organization.to_string(), thread.to_string());
            if map.get(&key).is_some_and(|e| e.response_id == response_id) {
                map.remove(&key);
            }
        }
    }

    /// Takes the cancel handle of the thread's running generation.
    pub fn take(&self, organization: &str, thread: &str) -> Option<oneshot::Sender<CancelRequest>> {
        let mut map = self.entries.lock().ok()?;
        map.remove(&(organization.to_string(), thread.to_string()))
            .map(|e| e.cancel)
    }
}
