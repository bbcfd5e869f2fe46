//! Skein's engine: the use cases that span the stores and the model
//! providers, above all the model turn.
//!
//! Dependencies point one way: the API's front doors (the Freddy dialect
//! today, OpenAI's next) call the engine; the engine calls
//! `skein-persistence` and `skein-providers`, which build on
//! `skein-domain`. No HTTP type appears here: a front door parses its wire
//! shapes into a [`TurnRequest`], calls [`Engine::open`] and
//! [`Turn::spawn`], and renders the [`Completed`] turn or the
//! [`TurnEvent`]s in its own dialect.

pub mod cpu;
mod error;
pub mod events;
pub mod follow;
pub mod log_context;
mod metered;
pub mod recorder;
pub mod running;
pub mod turn;

pub use error::EngineError;
pub use events::{EventLog, EventReader, PublicFailure, Sequenced, TurnEvent};
pub use running::{CancelMode, CancelOutcome, Running};
pub use turn::{
    Completed, Dropped, LeaseGuard, Preview, Source, Target, Turn, TurnInput, TurnRequest,
};

use chrono::TimeDelta;
use skein_domain::retention::Clock;
use skein_domain::Limits;
use skein_persistence::{Backend, Scope, Store};
use skein_providers::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// What the engine works with. Cheap to clone (every field is shared or
/// small).
#[derive(Debug, Clone)]
pub struct Engine {
    /// The database.
    pub store: Store,
    /// Model name -> provider.
    pub router: Router,
    /// Domain limits.
    pub limits: Limits,
    /// The service clock.
    pub clock: Clock,
    /// How long a busy lease lasts unless released.
    pub lease_ttl: TimeDelta,
    /// How long a response can be chained to.
    pub response_ttl: TimeDelta,
    /// Silence of the model after which a `Heartbeat` event is sent.
    pub heartbeat: Duration,
    /// A cancel within this time of the start keeps nothing of the turn.
    pub quick_cancel: Duration,
    /// The responses running in this process, for cancel.
    pub running: Arc<Running>,
    /// Store thread responses' events, so that a client can reconnect to a
    /// stream (see [`recorder`]).
    pub store_events: bool,
}

/// How long a cancel waits for the replica running the response to report
/// what it kept.
pub const REMOTE_CANCEL_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// Cancels the response running in the caller's thread and reports what
    /// was kept. A response running in another replica (PostgreSQL) is
    /// asked through `NOTIFY`, and its outcome read from its stored events.
    /// A thread the caller cannot see, or one with nothing running, is
    /// [`EngineError::NotRunning`].
    pub async fn cancel(
        &self,
        scope: &Scope,
        thread_id: &str,
    ) -> Result<CancelOutcome, EngineError> {
        let not_running = || EngineError::NotRunning(thread_id.to_string());
        let (s, t, now) = (scope.clone(), thread_id.to_string(), self.clock.now());
        let target = match self
            .store
            .run(move |conn| skein_persistence::events::locate(conn, &s, &t, now))
            .await
        {
            Ok(target) => target,
            Err(skein_persistence::StoreError::NotFound(_)) => return Err(not_running()),
            Err(e) => return Err(e.into()),
        };
        let organization = scope.organization_id.as_str();
        if let Some(handle) = self.running.take(organization, thread_id) {
            let (reply, outcome) = oneshot::channel();
            handle.send(reply).map_err(|_| not_running())?;
            // The turn answers from its generation loop, which never waits
            // on a client; it drops the channel if it ended first.
            return outcome.await.map_err(|_| not_running());
        }
        if !target.running || self.store.backend() != Backend::Postgres {
            return Err(not_running());
        }
        // Ask the replica running it, then follow the response's stored
        // events (read before each wait, so none is missed): its terminal
        // event carries what the cancel kept.
        let events = self.follow(thread_id, target, 0).await?;
        let (o, t) = (organization.to_string(), thread_id.to_string());
        self.store
            .run(move |conn| skein_persistence::events::request_cancel(conn, &o, &t))
            .await?;
        let ended = tokio::time::timeout(REMOTE_CANCEL_WAIT, async {
            let mut events = std::pin::pin!(events);
            while let Some(e) = futures_util::StreamExt::next(&mut events).await {
                if e.event.is_terminal() {
                    return Some(e.event);
                }
            }
            None
        })
        .await;
        match ended {
            Ok(Some(TurnEvent::Cancelled(Some(outcome)))) => Ok(outcome),
            _ => Err(not_running()),
        }
    }
}
