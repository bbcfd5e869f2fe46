//! The events of a running turn, in a dialect-neutral form that each front
//! door renders its own way.
//!
//! A turn writes its events into an [`EventLog`] and never waits for a
//! reader: a slow client cannot stall the generation, a cancel or the
//! upstream's timeout. Every event keeps its own sequence number, and
//! readers follow the log at their own pace. A client's reader that has
//! fallen [`BACKLOG`] events behind gets each run of consecutive deltas of
//! its batch as one delta under the run's last number (fewer, larger
//! frames, the same text); the recorder that stores the events for
//! reconnects reads every event as it is.

use crate::running::CancelOutcome;
use crate::turn::Completed;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// What happened in a turn.
#[derive(Debug, Clone)]
pub enum TurnEvent {
    /// The turn started (always the first event).
    Created {
        /// The response id.
        response_id: String,
        /// The thread, if the turn runs in one.
        thread_id: Option<String>,
    },
    /// The next piece of the answer.
    Delta(String),
    /// The model has been silent for the heartbeat interval.
    Heartbeat,
    /// The turn was saved (terminal).
    Completed(Box<Completed>),
    /// The turn failed and nothing was saved (terminal): what a client may
    /// see of the failure.
    Failed(PublicFailure),
    /// The turn was cancelled (terminal), with what the cancel kept.
    Cancelled(Option<CancelOutcome>),
    /// The process running the turn went away before it ended (terminal;
    /// only a reconnect reports this).
    Interrupted,
}

impl TurnEvent {
    /// True for the events that end a turn.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed(_) | Self::Failed(_) | Self::Cancelled(_) | Self::Interrupted
        )
    }
}

/// A failure as a client sees it: the front door's code and public message
/// (no upstream URL, body or transport detail). Stored with the events, so
/// that a reconnect on any replica reports the same failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicFailure {
    /// The error code (`UPSTREAM_ERROR`, ...).
    pub code: String,
    /// The public message.
    pub message: String,
}

/// How a run of events is stored: consecutive deltas become one item
/// holding their text and the byte offsets where one delta ended and the
/// next began, so a stored run costs about the answer's size, and a
/// reconnect still replays every delta under its own sequence number.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Stored {
    Created {
        seq: u64,
        response_id: String,
        thread_id: Option<String>,
    },
    Deltas {
        seq: u64,
        text: String,
        cuts: Vec<usize>,
    },
    Heartbeat {
        seq: u64,
    },
    Completed {
        seq: u64,
        response: Box<Completed>,
    },
    Failed {
        seq: u64,
        failure: PublicFailure,
    },
    Cancelled {
        seq: u64,
        outcome: Option<CancelOutcome>,
    },
    Interrupted {
        seq: u64,
    },
}

/// Encodes a run of events for storage (see [`decode_run`]).
pub fn encode_run(run: &[Sequenced]) -> String {
    let mut items: Vec<Stored> = Vec::new();
    for Sequenced { sequence, event } in run {
        let seq = *sequence;
        if let (
            TurnEvent::Delta(piece),
            Some(Stored::Deltas {
                seq: first,
                text,
                cuts,
            }),
        ) = (event, items.last_mut())
        {
            if *first + cuts.len() as u64 + 1 == seq {
                cuts.push(text.len());
                text.push_str(piece);
                continue;
            }
        }
        items.push(match event {
            TurnEvent::Created {
                response_id,
                thread_id,
            } => Stored::Created {
                seq,
                response_id: response_id.clone(),
                thread_id: thread_id.clone(),
            },
            TurnEvent::Delta(piece) => Stored::Deltas {
                seq,
                text: piece.clone(),
                cuts: Vec::new(),
            },
            TurnEvent::Heartbeat => Stored::Heartbeat { seq },
            TurnEvent::Completed(done) => Stored::Completed {
                seq,
                response: done.clone(),
            },
            TurnEvent::Failed(failure) => Stored::Failed {
                seq,
                failure: failure.clone(),
            },
            TurnEvent::Cancelled(outcome) => Stored::Cancelled {
                seq,
                outcome: outcome.clone(),
            },
            TurnEvent::Interrupted => Stored::Interrupted { seq },
        });
    }
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}

/// Decodes a stored run back into its events, each under its own sequence
/// number.
pub fn decode_run(text: &str) -> Result<Vec<Sequenced>, serde_json::Error> {
    let items: Vec<Stored> = serde_json::from_str(text)?;
    let mut out = Vec::new();
    for item in items {
        let (sequence, event) = match item {
            Stored::Created {
                seq,
                response_id,
                thread_id,
            } => (
                seq,
                TurnEvent::Created {
                    response_id,
                    thread_id,
                },
            ),
            Stored::Deltas { seq, text, cuts } => {
                let mut start = 0;
                for (i, end) in cuts.iter().copied().chain([text.len()]).enumerate() {
                    let piece = text.get(start..end).unwrap_or_default().to_string();
                    out.push(Sequenced {
                        sequence: seq + i as u64,
                        event: TurnEvent::Delta(piece),
                    });
                    start = end;
                }
                continue;
            }
            Stored::Heartbeat { seq } => (seq, TurnEvent::Heartbeat),
            Stored::Completed { seq, response } => (seq, TurnEvent::Completed(response)),
            Stored::Failed { seq, failure } => (seq, TurnEvent::Failed(failure)),
            Stored::Cancelled { seq, outcome } => (seq, TurnEvent::Cancelled(outcome)),
            Stored::Interrupted { seq } => (seq, TurnEvent::Interrupted),
        };
        out.push(Sequenced { sequence, event });
    }
    Ok(out)
}

/// An event and its place in the turn (1, 2, ...).
#[derive(Debug, Clone)]
pub struct Sequenced {
    /// Grows by one per event; merged deltas keep the last one's number.
    pub sequence: u64,
    /// The event.
    pub event: TurnEvent,
}

/// A reader this many events behind gets its runs of deltas merged.
pub const BACKLOG: usize = 32;

#[derive(Debug, Default)]
struct LogState {
    events: Vec<Sequenced>,
    closed: bool,
}

/// The events of one turn. Writers never block on readers.
#[derive(Debug)]
pub struct EventLog {
    state: Mutex<LogState>,
    wake: watch::Sender<u64>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LogState::default()),
            wake: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an event under the next sequence number (ignored once a
    /// terminal event was appended).
    pub fn push(&self, event: TurnEvent) {
        let version = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            let sequence = st.events.last().map_or(1, |e| e.sequence + 1);
            st.closed = event.is_terminal();
            st.events.push(Sequenced { sequence, event });
            sequence
        };
        self.wake.send_replace(version);
    }

    /// A client's reader of the events above `after`: a batch of at least
    /// [`BACKLOG`] events comes with its runs of deltas merged.
    pub fn reader(self: &Arc<Self>, after: u64) -> EventReader {
        EventReader {
            log: Arc::clone(self),
            wake: self.wake.subscribe(),
            after,
            done: false,
            merge: true,
        }
    }

    /// A reader of every event above `after`, as it is (for storing them).
    pub fn exact_reader(self: &Arc<Self>, after: u64) -> EventReader {
        EventReader {
            merge: false,
            ..self.reader(after)
        }
    }
}

/// Follows an [`EventLog`].
#[derive(Debug)]
pub struct EventReader {
    log: Arc<EventLog>,
    wake: watch::Receiver<u64>,
    after: u64,
    done: bool,
    merge: bool,
}

impl EventReader {
    /// The events this reader has not seen yet, in order, waiting for at
    /// least one. `None` after the terminal event has been returned.
    pub async fn next(&mut self) -> Option<Vec<Sequenced>> {
        if self.done {
            return None;
        }
        loop {
            // Marked seen before looking, so a push after the look wakes us.
            self.wake.borrow_and_update();
            if let Some(batch) = self.take() {
                return Some(batch);
            }
            if self.wake.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The events this reader has not seen yet, without waiting; `None`
    /// when there are none (or the terminal event was returned).
    pub fn try_next(&mut self) -> Option<Vec<Sequenced>> {
        if self.done {
            return None;
        }
        self.take()
    }

    fn take(&mut self) -> Option<Vec<Sequenced>> {
        let batch = {
            let st = self.log.lock();
            let start = st.events.partition_point(|e| e.sequence <= self.after);
            st.events.get(start..).filter(|b| !b.is_empty())?.to_vec()
        };
        self.after = batch.last().map_or(self.after, |e| e.sequence);
        self.done = batch.iter().any(|e| e.event.is_terminal());
        Some(if self.merge && batch.len() >= BACKLOG {
            merge_deltas(batch)
        } else {
            batch
        })
    }
}

/// Each run of consecutive deltas as one delta under the run's last number.
fn merge_deltas(batch: Vec<Sequenced>) -> Vec<Sequenced> {
    let mut out: Vec<Sequenced> = Vec::with_capacity(batch.len());
    for Sequenced { sequence, event } in batch {
        if let (
            TurnEvent::Delta(more),
            Some(Sequenced {
                sequence: last,
                event: TurnEvent::Delta(text),
            }),
        ) = (&event, out.last_mut())
        {
            text.push_str(more);
            *last = sequence;
            continue;
        }
        out.push(Sequenced { sequence, event });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn texts(batch: &[Sequenced]) -> Vec<(u64, String)> {
        batch
            .iter()
            .map(|e| {
                let what = match &e.event {
                    TurnEvent::Delta(t) => t.clone(),
                    TurnEvent::Heartbeat => "<heartbeat>".into(),
                    TurnEvent::Cancelled(_) => "<cancelled>".into(),
                    other => format!("{other:?}"),
                };
                (e.sequence, what)
            })
            .collect()
    }

    async fn next(r: &mut EventReader) -> Option<Vec<Sequenced>> {
        tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .expect("a reader with events waiting does not block")
    }

    #[tokio::test]
    async fn deltas_stay_apart_while_readers_keep_up() {
        let log = EventLog::new();
        let mut reader = log.reader(0);
        for piece in ["a", "b", "c"] {
            log.push(TurnEvent::Delta(piece.into()));
        }
        assert_eq!(
            texts(&next(&mut reader).await.unwrap()),
            [(1, "a".into()), (2, "b".into()), (3, "c".into())]
        );
    }

    #[tokio::test]
    async fn a_reader_behind_by_the_backlog_gets_merged_deltas_under_the_last_number() {
        let log = EventLog::new();
        let mut reader = log.reader(0);
        let mut exact = log.exact_reader(0);
        let pieces: Vec<String> = (0..BACKLOG + 10).map(|i| format!("{i} ")).collect();
        for piece in &pieces {
            log.push(TurnEvent::Delta(piece.clone()));
        }
        log.push(TurnEvent::Heartbeat);
        log.push(TurnEvent::Delta("x".into()));
        let last = BACKLOG as u64 + 10;
        assert_eq!(
            texts(&next(&mut reader).await.unwrap()),
            [
                (last, pieces.concat()),
                (last + 1, "<heartbeat>".into()),
                (last + 2, "x".into())
            ],
            "one delta per run, numbered as its last piece"
        );
        // The exact reader (the recorder) sees every event.
        assert_eq!(next(&mut exact).await.unwrap().len(), BACKLOG + 12);
        // Caught up: deltas are events of their own again.
        log.push(TurnEvent::Delta("y".into()));
        log.push(TurnEvent::Delta("z".into()));
        assert_eq!(
            texts(&next(&mut reader).await.unwrap()),
            [(last + 3, "y".into()), (last + 4, "z".into())]
        );
    }

    #[tokio::test]
    async fn readers_end_after_the_terminal_event_and_later_pushes_are_ignored() {
        let log = EventLog::new();
        let mut reader = log.reader(0);
        log.push(TurnEvent::Delta("a".into()));
        log.push(TurnEvent::Cancelled(None));
        log.push(TurnEvent::Delta("late".into()));
        assert_eq!(
            texts(&next(&mut reader).await.unwrap()),
            [(1, "a".into()), (2, "<cancelled>".into())]
        );
        assert!(next(&mut reader).await.is_none());
        let mut replay = log.reader(1);
        assert_eq!(
            texts(&next(&mut replay).await.unwrap()),
            [(2, "<cancelled>".into())]
        );
    }

    #[test]
    fn a_stored_run_replays_every_delta_under_its_own_number() {
        let run = vec![
            Sequenced {
                sequence: 1,
                event: TurnEvent::Created {
                    response_id: "resp_1".into(),
                    thread_id: Some("thread_1".into()),
                },
            },
            Sequenced {
                sequence: 2,
                event: TurnEvent::Delta("Hé".into()),
            },
            Sequenced {
                sequence: 3,
                event: TurnEvent::Delta("llo".into()),
            },
            Sequenced {
                sequence: 4,
                event: TurnEvent::Heartbeat,
            },
            Sequenced {
                sequence: 5,
                event: TurnEvent::Delta(" w".into()),
            },
            Sequenced {
                sequence: 6,
                event: TurnEvent::Failed(PublicFailure {
                    code: "UPSTREAM_ERROR".into(),
                    message: "The model provider failed".into(),
                }),
            },
        ];
        let stored = encode_run(&run);
        assert_eq!(
            stored.matches("\"deltas\"").count(),
            2,
            "consecutive deltas share one item: {stored}"
        );
        let back = decode_run(&stored).unwrap();
        assert_eq!(
            texts(&back),
            texts(&run),
            "the same events under the same numbers"
        );
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_the_next_push() {
        let log = EventLog::new();
        let mut reader = log.reader(0);
        let writer = Arc::clone(&log);
        let waiting = tokio::spawn(async move { next(&mut reader).await });
        tokio::task::yield_now().await;
        writer.push(TurnEvent::Delta("hello".into()));
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(texts(&got), [(1, "hello".into())]);
    }
}
