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
pub mod running;
pub mod turn;

pub use error::EngineError;
pub use events::{EventLog, EventReader, Sequenced, TurnEvent};
pub use running::{CancelMode, CancelOutcome, Running};
pub use turn::{Completed, LeaseGuard, Target, Turn, TurnInput, TurnRequest};

use chrono::TimeDelta;
use skein_domain::retention::Clock;
use skein_domain::Limits;
use skein_persistence::{Scope, Store};
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
}

impl Engine {
    /// Cancels the response running in the caller's thread and reports what
    /// was kept. A thread the caller cannot see, or one with nothing running
    /// in this process, is [`EngineError::NotRunning`].
    pub async fn cancel(
        &self,
        scope: &Scope,
        thread_id: &str,
    ) -> Result<CancelOutcome, EngineError> {
        let not_running = || EngineError::NotRunning(thread_id.to_string());
        let (s, t) = (scope.clone(), thread_id.to_string());
        let visible = self
            .store
            .run(move |conn| skein_persistence::threads::find(conn, &s, &t))
            .await?;
        if visible.is_none() {
            return Err(not_running());
        }
        let handle = self
            .running
            .take(scope.organization_id.as_str(), thread_id)
            .ok_or_else(not_running)?;
        let (reply, outcome) = oneshot::channel();
        handle.send(reply).map_err(|_| not_running())?;
        // The turn answers from its generation loop, which never waits on a
        // client; it drops the channel if it ended first.
        outcome.await.map_err(|_| not_running())
    }
}
