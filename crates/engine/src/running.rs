//! Responses being generated right now in this process, per thread, so
//! that a cancel request can reach the task generating it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

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
    /// Turns spawned and not yet ended (committed, failed or cancelled),
    /// with or without a thread.
    turns: AtomicUsize,
    /// Told when `turns` drops to zero.
    settled: Notify,
    /// The process is shutting down (see [`Running::drain`]).
    draining: AtomicBool,
}

/// A spawned turn, counted by [`Running::drain`] until this is dropped
/// (when the turn's task ends, or is dropped with its runtime).
#[derive(Debug)]
pub struct TurnSlot {
    running: Arc<Running>,
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        if self.running.turns.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.running.settled.notify_waiters();
        }
    }
}

/// What [`Running::drain`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Turns running when the drain began.
    pub running: usize,
    /// Turns asked to stop when the grace ran out.
    pub cancelled: usize,
    /// Turns still not ended when the drain gave up.
    pub left: usize,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// Counts a turn as running until the returned slot is dropped.
    pub fn enter(self: &Arc<Self>) -> TurnSlot {
        self.turns.fetch_add(1, Ordering::SeqCst);
        TurnSlot {
            running: Arc::clone(self),
        }
    }

    /// Turns running now.
    pub fn turns(&self) -> usize {
        self.turns.load(Ordering::SeqCst)
    }

    /// True once [`Running::drain`] began: a cancel then keeps the turn's
    /// input and partial answer, however young the turn.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Until no turn runs.
    async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.turns() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// For a graceful stop: lets the running turns end by themselves for up
    /// to `grace` (their answers are committed as usual), then cancels
    /// those still generating, which saves their input and partial answer
    /// and gives their lease back, and waits up to `after_cancel` for that.
    pub async fn drain(&self, grace: Duration, after_cancel: Duration) -> Drained {
        self.draining.store(true, Ordering::SeqCst);
        let running = self.turns();
        if tokio::time::timeout(grace, self.settled()).await.is_ok() {
            return Drained {
                running,
                cancelled: 0,
                left: 0,
            };
        }
        let handles: Vec<_> = match self.entries.lock() {
            Ok(mut map) => map.drain().map(|(_, e)| e.cancel).collect(),
            Err(_) => Vec::new(),
        };
        let mut cancelled = 0;
        for handle in handles {
            // Nobody waits for the outcome: it goes to the turn's events.
            let (reply, _) = oneshot::channel();
            if handle.send(reply).is_ok() {
                cancelled += 1;
            }
        }
        let _ = tokio::time::timeout(after_cancel, self.settled()).await;
        Drained {
            running,
            cancelled,
            left: self.turns(),
        }
    }

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Every await in these tests ends within this.
    const BOUND: Duration = Duration::from_secs(10);

    // Paused time: the timers below fire in order, at once.
    #[tokio::test(start_paused = true)]
    async fn a_drain_waits_for_the_turns_that_end_within_the_grace() {
        let running = Arc::new(Running::default());
        let slot = running.enter();
        let _cancel = running.register("org", "t1", "resp_1");
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(slot);
        });
        let drained = tokio::time::timeout(BOUND, running.drain(BOUND, BOUND))
            .await
            .expect("the drain ends when the turn does");
        assert_eq!(
            drained,
            Drained {
                running: 1,
                cancelled: 0,
                left: 0
            }
        );
        assert!(running.draining());
        ends.await.unwrap();
    }

    // Paused time: the timers below fire in order, at once.
    #[tokio::test(start_paused = true)]
    async fn a_drain_cancels_the_turns_left_after_the_grace_and_waits_for_them() {
        let running = Arc::new(Running::default());
        let slot = running.enter();
        let cancel = running.register("org", "t1", "resp_1");
        // The turn: stops (drops its slot) when asked to.
        let turn = tokio::spawn(async move {
            let request = cancel.await.expect("a cancel request comes");
            drop(request);
            drop(slot);
        });
        let drained = tokio::time::timeout(BOUND, running.drain(Duration::from_millis(20), BOUND))
            .await
            .expect("the drain ends once the cancelled turn does");
        assert_eq!(
            drained,
            Drained {
                running: 1,
                cancelled: 1,
                left: 0
            }
        );
        tokio::time::timeout(BOUND, turn).await.unwrap().unwrap();
    }

    // Paused time: the timers below fire in order, at once.
    #[tokio::test(start_paused = true)]
    async fn a_drain_gives_up_on_a_turn_that_never_ends() {
        let running = Arc::new(Running::default());
        let _stuck = running.enter();
        let drained = tokio::time::timeout(
            BOUND,
            running.drain(Duration::from_millis(10), Duration::from_millis(10)),
        )
        .await
        .expect("the drain gives up after its two waits");
        assert_eq!(
            drained,
            Drained {
                running: 1,
                cancelled: 0,
                left: 1
            }
        );
    }
}
