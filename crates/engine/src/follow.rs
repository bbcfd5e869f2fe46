//! Reconnecting to a thread's response stream, on any replica: the stored
//! events after the client's last one, then the live ones as they are
//! stored, until the terminal event.
//!
//! Readers wait on [`skein_persistence::events::Signals`] (woken by this
//! process's recorder, and on PostgreSQL by every replica's through
//! `NOTIFY`), and look again at most every [`RECHECK`] in case the process
//! running the response died: once its lease has lapsed (or was given back
//! without a terminal event within [`GRACE`]), the stream ends with the
//! saved turn rebuilt as a completion if it was saved, else with
//! [`TurnEvent::Interrupted`].

use crate::events::{decode_run, Sequenced, TurnEvent};
use crate::turn::Completed;
use crate::{Engine, EngineError};
use futures_util::Stream;
use skein_persistence::events::{self, StreamTarget};
use skein_persistence::rows::to_utc;
use skein_providers::Usage;
use std::time::Duration;

/// The longest a reader waits without looking at the lease again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// How long a reader waits for the terminal event of a response that gave
/// its lease back (the recorder stores it right after the commit).
pub const GRACE: Duration = Duration::from_secs(2);

impl Engine {
    /// The events of `target`'s response with sequence numbers above
    /// `after`, then its live events until the terminal one. A thread
    /// without a response, or whose response left nothing (no stored event,
    /// no saved message), is [`EngineError::ResponseNotFound`].
    pub async fn follow(
        &self,
        thread_id: &str,
        target: StreamTarget,
        after: u64,
    ) -> Result<impl Stream<Item = Sequenced> + use<>, EngineError> {
        let Some(response_id) = target.response_id.clone() else {
            return Err(EngineError::ResponseNotFound(thread_id.to_string()));
        };
        let pk = target.thread_pk;
        let (id, running) = (response_id.clone(), target.running);
        let known = self
            .store
            .run(move |conn| {
                Ok::<_, EngineError>(
                    running
                        || events::has_events(conn, pk, &id)?
                        || !events::saved_messages(conn, pk, &id)?.is_empty(),
                )
            })
            .await?;
        if !known {
            return Err(EngineError::ResponseNotFound(thread_id.to_string()));
        }
        let engine = self.clone();
        let thread_id = thread_id.to_string();
        Ok(async_stream::stream! {
            let mut wake = engine.store.signals().watch_events(pk);
            let mut cursor = after;
            let mut released_at: Option<tokio::time::Instant> = None;
            loop {
                wake.borrow_and_update();
                let (id, from) = (response_id.clone(), i64::try_from(cursor).unwrap_or(i64::MAX));
                let rows = match engine.store.run(move |conn| events::after(conn, pk, &id, from)).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        log::warn!("a reconnect to {thread_id} could not read events: {e}");
                        yield interrupted(cursor);
                        return;
                    }
                };
                for row in rows {
                    let Ok(decoded) = decode_run(&row.events) else {
                        log::error!("stored events of {response_id} do not decode");
                        continue;
                    };
                    for event in decoded {
                        if event.sequence <= cursor {
                            continue;
                        }
                        cursor = event.sequence;
                        let end = event.event.is_terminal();
                        yield event;
                        if end {
                            return;
                        }
                    }
                }
                let (id, now) = (response_id.clone(), engine.clock.now());
                let running = engine
                    .store
                    .run(move |conn| events::is_running(conn, pk, &id, now))
                    .await
                    .unwrap_or(true);
                if !running {
                    let since = *released_at.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= GRACE {
                        yield engine.ending(&thread_id, pk, &response_id, cursor).await;
                        return;
                    }
                }
                let wait = if running { RECHECK } else { GRACE / 4 };
                let _ = tokio::time::timeout(wait, wake.changed()).await;
            }
        })
    }

    /// The end of a response that stopped without a stored terminal event:
    /// its saved turn as a completion, or an interruption.
    async fn ending(&self, thread_id: &str, pk: i64, response_id: &str, cursor: u64) -> Sequenced {
        let id = response_id.to_string();
        let saved = self
            .store
            .run(move |conn| events::saved_messages(conn, pk, &id))
            .await
            .unwrap_or_default();
        let Some(answer) = saved.iter().rev().find(|m| m.role == "assistant") else {
            return interrupted(cursor);
        };
        let input_tokens = saved
            .iter()
            .filter(|m| m.role != "assistant")
            .map(|m| u32::try_from(m.tokens).unwrap_or(0))
            .sum::<u32>();
        let output_tokens = u32::try_from(answer.tokens).unwrap_or(0);
        Sequenced {
            sequence: cursor + 1,
            event: TurnEvent::Completed(Box::new(Completed {
                response_id: response_id.to_string(),
                created_at: to_utc(answer.created_at),
                model: answer.model.clone().unwrap_or_default(),
                thread_id: Some(thread_id.to_string()),
                previous_response_id: None,
                message_id: answer.id.clone(),
                text: answer.content.clone(),
                usage: Usage {
                    input_tokens,
                    output_tokens,
                    total_tokens: input_tokens + output_tokens,
                },
                metadata: serde_json::Value::Null,
                completed_at: Some(to_utc(answer.created_at)),
            })),
        }
    }
}

fn interrupted(cursor: u64) -> Sequenced {
    Sequenced {
        sequence: cursor + 1,
        event: TurnEvent::Interrupted,
    }
}
