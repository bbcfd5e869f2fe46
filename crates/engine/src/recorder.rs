//! Stores a thread response's events as they happen, so that a client that
//! lost its stream can reconnect on any replica (see [`crate::follow`]).
//!
//! The recorder is one more reader of the turn's [`EventLog`]: it never
//! holds the generation back. It writes a run of events at most every
//! [`FLUSH_EVERY`] (a run that ends the turn at once), so a
//! response costs a row per ~50 ms of generation, not one per token, and
//! consecutive deltas are stored as one text (see
//! [`crate::events::encode_run`]). Each write wakes the readers of the
//! thread on every replica.

use crate::events::{encode_run, EventReader, Sequenced};
use skein_domain::retention::Clock;
use skein_persistence::events::{self, NewEvents};
use skein_persistence::Store;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest a stored event waits for its run to be written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Follows `reader` and stores its events for `response_id` in the thread
/// with row id `thread_pk`, until the terminal event is stored.
pub fn record(
    store: Store,
    clock: Clock,
    thread_pk: i64,
    response_id: String,
    mut reader: EventReader,
) -> JoinHandle<()> {
    tokio::spawn(crate::log_context::inherit(async move {
        let mut pending: Vec<Sequenced> = Vec::new();
        // A turn that ends within its first FLUSH_EVERY costs one write.
        let mut last_write = Instant::now();
        loop {
            let Some(batch) = reader.next().await else {
                break;
            };
            pending.extend(batch);
            if !pending.iter().any(|e| e.event.is_terminal()) {
                // Gather until the run is due, or at once when the turn
                // ends (a reconnect may be waiting for the terminal run).
                let due = tokio::time::sleep_until(last_write + FLUSH_EVERY);
                tokio::pin!(due);
                loop {
                    tokio::select! {
                        () = &mut due => break,
                        more = reader.next() => match more {
                            Some(more) => {
                                let ends = more.iter().any(|e| e.event.is_terminal());
                                pending.extend(more);
                                if ends {
                                    break;
                                }
                            }
                            None => break,
                        },
                    }
                }
            }
            let terminal = pending.iter().any(|e| e.event.is_terminal());
            let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
                continue;
            };
            let run = NewEvents {
                first_seq: i64::try_from(first.sequence).unwrap_or(i64::MAX),
                last_seq: i64::try_from(last.sequence).unwrap_or(i64::MAX),
                events: encode_run(&pending),
                terminal,
            };
            let (id, now) = (response_id.clone(), clock.now());
            last_write = Instant::now();
            match store
                .run(move |conn| events::append(conn, thread_pk, &id, &run, now))
                .await
            {
                Ok(()) => {
                    pending.clear();
                    store.signals().events_stored(thread_pk);
                }
                // Kept and written with the next run.
                Err(e) => log::warn!("could not store the events of {response_id}: {e}"),
            }
            if terminal && pending.is_empty() {
                break;
            }
        }
    }))
}
