//! The model turn: opened (one trip to the database), generated (the
//! provider's stream, cancel, heartbeats, events), committed (one
//! transaction, one trip).
//!
//! ```text
//! let turn = engine.open(scope, request).await?;   // thread or chain, first-use create,
//!                                                  // assistant, lease, history: one trip
//! let task = turn.spawn(events);                   // generate, then commit: one trip
//! ```
//!
//! The busy lease belongs to a [`LeaseGuard`]: whatever ends the turn
//! (provider failure, a failed save, a quick cancel, a panic, the task being
//! dropped) gives it back through the guard's one release path, and a
//! thread the turn created is removed again if it is still empty.

use crate::events::{EventLog, PublicFailure, TurnEvent};
use crate::running::{CancelMode, CancelOutcome, CancelRequest};
use crate::{cpu, Engine, EngineError};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use skein_domain::context::{
    ContextBuilder, ContextItem, ContextMode, ContextRole, RECENT_MESSAGES, SMART_FIRST, SMART_LAST,
};
use skein_domain::turn::{effective_settings, EffectiveSettings, RequestedSettings};
use skein_domain::{
    Assistant, AssistantId, MessageId, MessageRole, Metadata, NewMessage, ResponseId, ThreadId,
    ThreadState, WorkflowId,
};
use skein_persistence::responses::{self, StoredInput, StoredResponse};
use skein_persistence::turns::{self, FinishedTurn, History, Rewind, TurnStart};
use skein_persistence::{assistants, DbConnection, Scope, Store};
use skein_providers::{
    tokens, ChatMessage, ModelOutput, ModelRequest, ProviderError, ResolvedModel, Role,
    StreamEvent, ToolPart, Usage,
};
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// History is read newest-first in chunks of this many messages.
const HISTORY_CHUNK: u32 = 64;

/// Where a turn's history comes from and where it is saved.
#[derive(Debug, Clone)]
pub enum Target {
    /// No history, nothing saved but the response itself (if stored).
    Threadless,
    /// A thread, created with this metadata on first use.
    Thread {
        /// The thread id.
        id: ThreadId,
        /// Metadata for a thread this turn creates.
        metadata: Metadata,
        /// The `workflow_id` of a thread this turn creates.
        workflow_id: Option<WorkflowId>,
        /// `Some(ttl)`: a thread this turn creates is incognito.
        incognito_ttl: Option<TimeDelta>,
        /// Create the thread on first use; when false a missing thread is
        /// an error (OpenAI's conversations must exist).
        create: bool,
    },
    /// The conversation that led to a stored response.
    Chain {
        /// The response to continue.
        previous_response_id: String,
    },
}

/// One new input of a turn.
#[derive(Debug, Clone)]
pub struct TurnInput {
    /// Who speaks (for an item, see [`skein_domain::item_role`]).
    pub role: ContextRole,
    /// The text (an item's JSON text).
    pub text: String,
    /// A conversation item that is not a message (OpenAI's
    /// `function_call`, `function_call_output`, ...), kept verbatim: saved
    /// with the turn like the user and assistant inputs.
    pub item: Option<Value>,
}

impl TurnInput {
    /// A message input.
    pub fn text(role: ContextRole, text: String) -> Self {
        Self {
            role,
            text,
            item: None,
        }
    }

    /// A conversation item that is not a message, and its JSON text.
    pub fn item(item: Value) -> Self {
        Self {
            role: skein_domain::item_role(skein_domain::item_kind(Some(&item))).into(),
            text: item.to_string(),
            item: Some(item),
        }
    }
}

/// A turn as a front door asks for it, already parsed.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// History source and destination.
    pub target: Target,
    /// The new inputs, in order (system and developer inputs apply to this
    /// request only; user and assistant inputs are saved).
    pub inputs: Vec<TurnInput>,
    /// The assistant the request names.
    pub assistant: Option<AssistantId>,
    /// Model, instructions and sampling as requested.
    pub settings: RequestedSettings,
    /// A lifecycle state to apply with the save.
    pub thread_state: Option<ThreadState>,
    /// Keep the response (for chains); a thread's turns are always saved.
    pub store: bool,
    /// Stored with the response.
    pub metadata: Map<String, Value>,
    /// How much stored history goes in front of the inputs.
    pub context_mode: ContextMode,
    /// Rewind the thread first (applied with the turn's commit).
    pub rewind: Option<Rewind>,
    /// Cut the oldest history to fit the window (the default); when false
    /// a history that does not fit fails the turn (`HistoryTooLong`).
    pub truncate: bool,
}

impl TurnRequest {
    /// The bytes of text the turn counts before it opens (its inputs and
    /// instructions).
    pub fn text_bytes(&self) -> usize {
        self.inputs.iter().map(|i| i.text.len()).sum::<usize>()
            + self.settings.instructions.as_ref().map_or(0, String::len)
    }
}

/// What a turn would send to its model (see [`Engine::preview`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// The model the turn would run with.
    pub model: String,
    /// The provider that serves it (its name in the configuration).
    pub provider: String,
    /// The model's context window in tokens.
    pub context_window: u32,
    /// The output limit that applies, if any.
    pub max_output_tokens: Option<u32>,
    /// The context, in the order the model gets it.
    pub context: Vec<ContextItem>,
    /// Where each item of `context` comes from.
    pub sources: Vec<Source>,
    /// The stored history not sent: entries and their tokens.
    pub dropped: Dropped,
    /// Its tokens, as Skein counts them (o200k_base, no per-message
    /// overhead: what the echo model reports as its input).
    pub input_tokens: u32,
}

/// Where an item of a turn's context comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The instructions (the request's, or its assistant's).
    Instructions,
    /// The request's inputs (system and developer inputs included).
    Input,
    /// The thread's or the chain's stored history.
    History,
}

impl Source {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instructions => "instructions",
            Self::Input => "input",
            Self::History => "history",
        }
    }
}

/// Stored history a turn does not send (cut by the window or by the
/// context mode, or items no model takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dropped {
    /// Messages and items.
    pub messages: u64,
    /// Their tokens.
    pub tokens: u64,
}

impl Dropped {
    fn add(&mut self, tokens: u32) {
        self.messages += 1;
        self.tokens += u64::from(tokens);
    }
}

/// How a turn is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// For real: the lease is taken, a new thread created.
    Turn,
    /// Read only (a preview); `checked`: the lifecycle and the cap are
    /// checked as the turn would check them.
    Preview { checked: bool },
}

/// A saved turn: what both front doors render as their response object.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Completed {
    /// The response id.
    pub response_id: String,
    /// When the turn started.
    pub created_at: DateTime<Utc>,
    /// The model name the turn ran with (as requested, not as routed).
    pub model: String,
    /// The thread, if any.
    pub thread_id: Option<String>,
    /// The response continued, if any.
    pub previous_response_id: Option<String>,
    /// The id of the saved answer message.
    pub message_id: String,
    /// The answer.
    pub text: String,
    /// Token accounting.
    pub usage: Usage,
    /// The request's metadata.
    pub metadata: Value,
    /// When the turn was saved (absent in events stored before it was
    /// kept: then the start).
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

/// An open turn: the lease is held (in a thread) and the context is built.
#[derive(Debug)]
pub struct Turn {
    engine: Engine,
    scope: Scope,
    response_id: ResponseId,
    created_at: DateTime<Utc>,
    target: Option<ThreadId>,
    previous_response_id: Option<String>,
    settings: EffectiveSettings,
    model: ResolvedModel,
    context: Vec<ContextItem>,
    inputs: Vec<NewMessage>,
    thread_state: Option<ThreadState>,
    store: bool,
    metadata: Value,
    lease: Option<LeaseGuard>,
    thread_pk: Option<i64>,
    rewind_from: Option<i64>,
    answer_id: MessageId,
    truncate: bool,
    /// Preamble, history and new inputs in `context`.
    parts: [usize; 3],
    /// What a preview did not send of the history.
    dropped: Dropped,
}

/// The id of a response's answer: `msg_` and the response id's own random
/// part, so that the answer can be named before it is saved, and a
/// thread-less response (which saves no message) names it the same way
/// when it is read back.
pub fn answer_id(response_id: &ResponseId) -> MessageId {
    let random = response_id
        .as_str()
        .strip_prefix("resp_")
        .unwrap_or(response_id.as_str());
    MessageId::parse(format!("msg_{random}")).unwrap_or_else(|_| MessageId::generate())
}

/// What the generation ended with.
enum Generated {
    Answer(ModelOutput),
    Failed(EngineError),
    Cancelled {
        partial: String,
        reply: CancelRequest,
    },
}

/// The part of opening that depends on the stored state: which settings
/// apply, which model serves them, and the context budget.
struct Plan {
    settings: EffectiveSettings,
    model: ResolvedModel,
    builder: ContextBuilder,
}

/// What the one trip of [`Engine::open`] brings back.
struct Opened {
    settings: EffectiveSettings,
    model: ResolvedModel,
    context: Vec<ContextItem>,
    lease: Option<LeaseGuard>,
    thread_pk: Option<i64>,
    rewind_from: Option<i64>,
    parts: [usize; 3],
    dropped: Dropped,
}

impl Plan {
    fn finish(self, lease: Option<LeaseGuard>, thread_pk: Option<i64>) -> Opened {
        Opened {
            settings: self.settings,
            model: self.model,
            parts: self.builder.parts(),
            context: self.builder.finish(),
            lease,
            thread_pk,
            rewind_from: None,
            dropped: Dropped::default(),
        }
    }
}

impl Engine {
    /// Opens a turn: counts the new inputs (off the async workers unless
    /// they are short), then in one trip to the database runs `who` (the
    /// front door's step that says whose turn it is: authentication and the
    /// organization, as a [`Scope`]), resolves the thread or the chain,
    /// creates a client-named thread on first use, binds the assistant,
    /// applies the settings' precedence, routes the model, checks that the
    /// inputs fit, takes the busy lease and reads as much history as the
    /// window holds. Refused ([`StoreError::Unavailable`]) once a graceful
    /// stop has begun ([`Running::drain`]).
    ///
    /// [`StoreError::Unavailable`]: skein_persistence::StoreError::Unavailable
    /// [`Running::drain`]: crate::Running::drain
    pub async fn open<E, W>(&self, request: TurnRequest, who: W) -> Result<Turn, E>
    where
        W: FnOnce(&mut DbConnection) -> Result<Scope, E> + Send + 'static,
        E: From<EngineError> + From<skein_persistence::StoreError> + Send + 'static,
    {
        if self.running.draining() {
            // A graceful stop is under way: a client retries on another
            // replica (or on this one once it is back).
            return Err(E::from(skein_persistence::StoreError::Unavailable(
                "the server is shutting down".into(),
            )));
        }
        self.open_with(request, who, Opening::Turn).await
    }

    /// The context a turn with `request` would send to its model now, built
    /// by the same steps as [`Engine::open`] (settings, routing, history,
    /// window) but without a lease and without writing anything: a thread
    /// that the turn would create counts as empty; the lifecycle and the
    /// cap are checked only when `checked` (the lease never is).
    pub async fn preview<E, W>(
        &self,
        request: TurnRequest,
        who: W,
        checked: bool,
    ) -> Result<Preview, E>
    where
        W: FnOnce(&mut DbConnection) -> Result<Scope, E> + Send + 'static,
        E: From<EngineError> + From<skein_persistence::StoreError> + Send + 'static,
    {
        let turn = self
            .open_with(request, who, Opening::Preview { checked })
            .await?;
        let [preamble, history, _] = turn.parts;
        let instructions = usize::from(turn.settings.instructions.is_some());
        let sources = (0..turn.context.len())
            .map(|at| {
                if at < instructions {
                    Source::Instructions
                } else if at >= preamble && at < preamble + history {
                    Source::History
                } else {
                    Source::Input
                }
            })
            .collect();
        Ok(Preview {
            model: turn.settings.model.clone(),
            provider: turn.model.provider_name.clone(),
            context_window: turn.model.context_window,
            max_output_tokens: turn.settings.max_output_tokens,
            input_tokens: turn
                .context
                .iter()
                .map(|item| item.tokens)
                .fold(0u32, u32::saturating_add),
            context: turn.context.clone(),
            sources,
            dropped: turn.dropped,
        })
    }

    async fn open_with<E, W>(
        &self,
        request: TurnRequest,
        who: W,
        opening: Opening,
    ) -> Result<Turn, E>
    where
        W: FnOnce(&mut DbConnection) -> Result<Scope, E> + Send + 'static,
        E: From<EngineError> + From<skein_persistence::StoreError> + Send + 'static,
    {
        let TurnRequest {
            target,
            inputs,
            assistant,
            settings,
            thread_state,
            store,
            metadata,
            context_mode,
            rewind,
            truncate,
        } = request;
        let response_id = ResponseId::generate();
        let answer_id = answer_id(&response_id);
        let now = self.clock.now();
        let (texts, counts) = cpu::count_tokens(
            inputs
                .iter()
                .map(|i| i.text.clone())
                .chain(settings.instructions.clone())
                .collect(),
        )
        .await?;
        let mut preamble = Vec::new();
        let mut new_items = Vec::new();
        let mut to_store = Vec::new();
        for ((input, text), tokens) in inputs.iter().zip(texts).zip(counts.iter().copied()) {
            let item = ContextItem {
                role: input.role,
                content: text,
                tokens,
                item: input.item.clone(),
                id: None,
            };
            if let Some(value) = &input.item {
                to_store.push(NewMessage {
                    response_id: Some(response_id.to_string()),
                    ..NewMessage::item(value.clone(), item.content.clone(), tokens)
                });
                if sendable(&item) {
                    new_items.push(item);
                }
                continue;
            }
            match input.role {
                ContextRole::System | ContextRole::Developer => preamble.push(item),
                ContextRole::User | ContextRole::Assistant => {
                    let role = if input.role == ContextRole::User {
                        MessageRole::User
                    } else {
                        MessageRole::Assistant
                    };
                    to_store.push(NewMessage {
                        response_id: Some(response_id.to_string()),
                        ..NewMessage::text(role, item.content.clone(), tokens)
                    });
                    new_items.push(item);
                }
            }
        }
        let request_instruction_tokens = counts.get(inputs.len()).copied();
        let planner = Planner {
            router: self.router.clone(),
            requested: settings,
            request_instruction_tokens,
            preamble,
            new_items,
        };
        let previous_response_id = match &target {
            Target::Chain {
                previous_response_id,
            } => Some(previous_response_id.clone()),
            _ => None,
        };
        let thread_id = match &target {
            Target::Thread { id, .. } => Some(id.clone()),
            _ => None,
        };
        let trip = OpenTrip {
            store: self.store.clone(),
            target,
            assistant,
            lease_id: response_id.to_string(),
            lease_ttl: self.lease_ttl,
            new_messages: u32::try_from(to_store.len() + 1).unwrap_or(u32::MAX),
            limits: self.limits,
            response_ttl: self.response_ttl,
            now,
            context_mode,
            rewind,
            truncate,
            opening,
        };
        let (scope, opened) = self
            .store
            .run(move |conn| -> Result<_, E> {
                let scope = who(conn)?;
                let opened = trip.run(conn, scope.clone(), planner)?;
                Ok((scope, opened))
            })
            .await?;
        Ok(Turn {
            engine: self.clone(),
            scope,
            response_id,
            created_at: now,
            target: thread_id,
            previous_response_id,
            settings: opened.settings,
            model: opened.model,
            context: opened.context,
            inputs: to_store,
            thread_state,
            store,
            metadata: Value::Object(metadata),
            lease: opened.lease,
            thread_pk: opened.thread_pk,
            rewind_from: opened.rewind_from,
            answer_id,
            truncate,
            parts: opened.parts,
            dropped: opened.dropped,
        })
    }
}

/// Chooses the settings and the model once the stored state is known.
struct Planner {
    router: skein_providers::Router,
    requested: RequestedSettings,
    request_instruction_tokens: Option<u32>,
    preamble: Vec<ContextItem>,
    new_items: Vec<ContextItem>,
}

impl Planner {
    fn plan(
        self,
        model_override: Option<&str>,
        assistant: Option<&Assistant>,
    ) -> Result<Plan, EngineError> {
        let settings = effective_settings(&self.requested, model_override, assistant);
        let model = self
            .router
            .resolve(&settings.model)
            .ok_or_else(|| EngineError::ModelNotFound(settings.model.clone()))?;
        let mut preamble = self.preamble;
        if let Some(instructions) = &settings.instructions {
            let tokens = match self.request_instruction_tokens {
                Some(n) if self.requested.instructions.as_ref() == Some(instructions) => n,
                // The assistant's instructions (bounded in length).
                _ => tokens::count(instructions),
            };
            preamble.insert(
                0,
                ContextItem::text(ContextRole::System, instructions.clone(), tokens),
            );
        }
        let builder = ContextBuilder::new(
            model.context_window,
            settings.max_output_tokens.unwrap_or(0),
            preamble,
            self.new_items,
        )?;
        Ok(Plan {
            settings,
            model,
            builder,
        })
    }
}

/// Everything the open trip needs, moved onto the blocking pool.
struct OpenTrip {
    store: Store,
    target: Target,
    assistant: Option<AssistantId>,
    lease_id: String,
    lease_ttl: chrono::TimeDelta,
    new_messages: u32,
    limits: skein_domain::Limits,
    response_ttl: chrono::TimeDelta,
    now: DateTime<Utc>,
    context_mode: ContextMode,
    rewind: Option<Rewind>,
    truncate: bool,
    /// For real, or read only (no lease, nothing created or written).
    opening: Opening,
}

impl OpenTrip {
    fn run(
        self,
        conn: &mut DbConnection,
        scope: Scope,
        planner: Planner,
    ) -> Result<Opened, EngineError> {
        let Self {
            store,
            target,
            assistant,
            lease_id,
            lease_ttl,
            new_messages,
            limits,
            response_ttl,
            now,
            context_mode,
            rewind,
            truncate,
            opening,
        } = self;
        let fits = |plan: &Plan| {
            if !truncate && plan.builder.truncated() {
                Err(EngineError::HistoryTooLong {
                    window: plan.model.context_window,
                })
            } else {
                Ok(())
            }
        };
        match target {
            Target::Thread {
                id,
                metadata,
                workflow_id,
                incognito_ttl,
                create,
            } => {
                let start = TurnStart {
                    thread_id: id.clone(),
                    metadata,
                    workflow_id,
                    incognito_ttl,
                    create,
                    assistant,
                    lease_id: lease_id.clone(),
                    lease_ttl,
                    new_messages,
                    rewind,
                };
                let plan_for = |thread: &skein_domain::Thread, assistant: Option<&Assistant>| {
                    planner.plan(thread.model_override(), assistant)
                };
                if let Opening::Preview { checked } = opening {
                    let (mut plan, history) =
                        turns::peek(conn, &scope, &start, &limits, now, checked, plan_for)?;
                    let mut dropped = Dropped::default();
                    if let Some(history) = &history {
                        offer_history(conn, history, context_mode, &mut plan.builder)?;
                        let (entries, tokens) = history.totals(conn)?;
                        let taken = plan.builder.history();
                        let taken_tokens: u64 = taken.iter().map(|i| u64::from(i.tokens)).sum();
                        dropped = Dropped {
                            messages: entries.saturating_sub(taken.len() as u64),
                            tokens: tokens.saturating_sub(taken_tokens),
                        };
                    }
                    fits(&plan)?;
                    return Ok(Opened {
                        dropped,
                        ..plan.finish(None, None)
                    });
                }
                let turns::OpenedTurn {
                    created,
                    mut plan,
                    history,
                    rewind_from,
                    ..
                } = turns::open(conn, &scope, &start, &limits, now, plan_for)?;
                // From here on the lease is held: the guard gives it back on
                // any failure, even if the caller has gone away.
                let lease = LeaseGuard {
                    store,
                    scope,
                    thread_id: id,
                    lease_id,
                    created,
                    armed: true,
                };
                let read = offer_history(conn, &history, context_mode, &mut plan.builder)
                    .and_then(|()| fits(&plan));
                if let Err(e) = read {
                    lease.release_now(conn);
                    return Err(e);
                }
                Ok(Opened {
                    rewind_from,
                    ..plan.finish(Some(lease), Some(history.thread_pk()))
                })
            }
            Target::Chain {
                previous_response_id,
            } => {
                let assistant = assistants::for_turn(conn, &scope, assistant.as_ref(), None)?;
                let mut plan = planner.plan(None, assistant.as_ref())?;
                let not_before = now - response_ttl;
                if responses::find(conn, &scope, &previous_response_id, not_before)?.is_none() {
                    return Err(EngineError::ResponseNotFound(previous_response_id));
                }
                let builder = &mut plan.builder;
                let previewing = opening != Opening::Turn;
                let mut dropped = Dropped::default();
                // Newest first: each response's output, then its inputs.
                // A turn stops at the first item that does not fit; a
                // preview walks on to count what is dropped.
                responses::walk_chain(conn, &scope, &previous_response_id, not_before, |r| {
                    let output = ContextItem::text(
                        ContextRole::Assistant,
                        r.output_text.clone(),
                        r.output_tokens,
                    );
                    let inputs = r.inputs.iter().rev().map(|i| ContextItem {
                        role: i.role.into(),
                        content: i.content.clone(),
                        tokens: i.tokens,
                        item: i.item.clone(),
                        id: None,
                    });
                    for item in std::iter::once(output).chain(inputs) {
                        let tokens = item.tokens;
                        if !sendable(&item) || !builder.offer_item(item) {
                            dropped.add(tokens);
                        }
                    }
                    previewing || !builder.truncated()
                })?;
                fits(&plan)?;
                Ok(Opened {
                    dropped: if previewing {
                        dropped
                    } else {
                        Dropped::default()
                    },
                    ..plan.finish(None, None)
                })
            }
            Target::Threadless => {
                let assistant = assistants::for_turn(conn, &scope, assistant.as_ref(), None)?;
                Ok(planner.plan(None, assistant.as_ref())?.finish(None, None))
            }
        }
    }
}

/// Offers the thread's stored history to the context as `mode` says
/// (newest first; the builder stops taking when the window is full).
fn offer_history(
    conn: &mut DbConnection,
    history: &History,
    mode: ContextMode,
    builder: &mut ContextBuilder,
) -> Result<(), EngineError> {
    match mode {
        ContextMode::Full => {
            // Each read fetches about what the window still has room for,
            // so a long thread reads hardly more rows than it sends.
            history.newest_first(conn, HISTORY_CHUNK, |item| {
                if sendable(&item) && !builder.offer_item(item) {
                    return 0;
                }
                builder.room_estimate()
            })?;
        }
        ContextMode::Off => {}
        ContextMode::Recent => {
            let mut taken = 0;
            history.newest_first(conn, RECENT_MESSAGES, |item| {
                if !sendable(&item) {
                    return RECENT_MESSAGES - taken;
                }
                taken += 1;
                if builder.offer_item(item) {
                    RECENT_MESSAGES - taken
                } else {
                    0
                }
            })?;
        }
        ContextMode::Smart => {
            // One more than both parts together says whether they overlap.
            let whole = SMART_FIRST + SMART_LAST;
            let mut newest = Vec::new();
            history.newest_first(conn, whole + 1, |item| {
                if sendable(&item) {
                    newest.push(item);
                }
                (whole + 1).saturating_sub(newest.len() as u32)
            })?;
            if newest.len() <= whole as usize {
                for item in newest {
                    if !builder.offer_item(item) {
                        break;
                    }
                }
                return Ok(());
            }
            newest.truncate(SMART_LAST as usize);
            let mut oldest = history.oldest(conn, SMART_FIRST)?;
            oldest.retain(sendable);
            for item in newest.into_iter().chain(oldest.into_iter().rev()) {
                if !builder.offer_item(item) {
                    break;
                }
            }
        }
    }
    Ok(())
}

impl Turn {
    /// The response id.
    pub fn response_id(&self) -> &str {
        self.response_id.as_str()
    }

    /// The id the answer's message will have once saved (a front door can
    /// name the output item before the answer is done).
    pub fn answer_id(&self) -> &MessageId {
        &self.answer_id
    }

    /// When the turn started.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The model the turn runs with (as requested, or the default).
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// The thread the turn runs in, if any.
    pub fn thread_id(&self) -> Option<&ThreadId> {
        self.target.as_ref()
    }

    /// Runs the turn on its own task (a caller that goes away drops its
    /// interest, not the turn): the `Created` event, the generation, the
    /// commit, then exactly one terminal event into `events`. A failure is
    /// handed to `on_failure` first (once, whether or not anyone still
    /// follows the turn: the front door reports it there and says what a
    /// client may see of it). A panic anywhere in the turn releases the
    /// lease and ends it as [`EngineError::Panicked`].
    ///
    /// In a thread, the turn's events are also stored (see
    /// [`crate::recorder`]) so that a client can reconnect from any
    /// replica, its lease is renewed while it runs, and a cancel request
    /// from another replica reaches it.
    pub fn spawn<R>(
        self,
        events: std::sync::Arc<EventLog>,
        on_failure: R,
    ) -> JoinHandle<Result<Completed, EngineError>>
    where
        R: FnOnce(&EngineError) -> PublicFailure + Send + 'static,
    {
        events.push(TurnEvent::Created {
            response_id: self.response_id.to_string(),
            thread_id: self.target.as_ref().map(ToString::to_string),
        });
        let running = std::sync::Arc::clone(&self.engine.running);
        let key = self.target.as_ref().map(|t| {
            (
                self.scope.organization_id.to_string(),
                t.to_string(),
                self.response_id.to_string(),
            )
        });
        let cancel = key
            .as_ref()
            .map(|(org, thread, response)| running.register(org, thread, response));
        let recorder = self
            .thread_pk
            .filter(|_| self.engine.store_events)
            .map(|pk| {
                crate::recorder::record(
                    self.engine.store.clone(),
                    self.engine.clock.clone(),
                    pk,
                    self.response_id.to_string(),
                    events.exact_reader(0),
                )
            });
        let mut turn = self;
        // Kept outside the part that may panic, so that a panic can give the
        // lease back before the turn's end is reported.
        let mut lease = turn.lease.take();
        let renewal = lease
            .as_ref()
            .map(|guard| guard.keep_alive(turn.engine.lease_ttl, turn.engine.clock.clone()));
        // Counted until the task ends, so that a graceful stop waits for it.
        let slot = running.enter();
        tokio::spawn(crate::log_context::inherit(async move {
            let _slot = slot;
            let mut outcome = None;
            let ran = AssertUnwindSafe(turn.run(&events, cancel, &mut lease, &mut outcome))
                .catch_unwind()
                .await;
            if let Some(renewal) = renewal {
                renewal.abort();
            }
            let result = match ran {
                Ok(result) => result,
                Err(panic) => {
                    if let Some(guard) = lease.take() {
                        guard.release().await;
                    }
                    Err(EngineError::Panicked(crate::error::panic_message(
                        panic.as_ref(),
                    )))
                }
            };
            if let Some((org, thread, response)) = &key {
                running.finish(org, thread, response);
            }
            match &result {
                Ok(done) => log::debug!(
                    "response {} completed: {} output tokens",
                    done.response_id,
                    done.usage.output_tokens
                ),
                Err(e) => log::debug!("response ended without an answer: {e}"),
            }
            events.push(match &result {
                Ok(done) => TurnEvent::Completed(Box::new(done.clone())),
                Err(EngineError::Cancelled) => TurnEvent::Cancelled(outcome),
                Err(e) => TurnEvent::Failed(on_failure(e)),
            });
            // The recorder stores the terminal run on its own: the caller
            // does not wait for it (a reconnect that comes first waits for
            // it, see `follow`).
            drop(recorder);
            result
        }))
    }

    async fn run(
        self,
        events: &EventLog,
        cancel: Option<oneshot::Receiver<CancelRequest>>,
        lease: &mut Option<LeaseGuard>,
        cancelled: &mut Option<CancelOutcome>,
    ) -> Result<Completed, EngineError> {
        let started = Instant::now();
        match self.generate(events, cancel).await {
            Generated::Answer(output) => self.commit(output, lease).await,
            Generated::Failed(e) => {
                release(lease).await;
                Err(e)
            }
            Generated::Cancelled { partial, reply } => {
                let outcome = self.cancel(started, partial, lease).await;
                *cancelled = Some(outcome.clone());
                // The canceller may have given up waiting (or is on another
                // replica and reads the outcome from the stored events).
                let _ = reply.send(outcome);
                Err(EngineError::Cancelled)
            }
        }
    }

    /// The provider's stream until its answer, an error or a cancel. Events
    /// go into the log without waiting for anyone, so a cancel, the
    /// heartbeat and the upstream's own timeout always stay live.
    async fn generate(
        &self,
        events: &EventLog,
        cancel: Option<oneshot::Receiver<CancelRequest>>,
    ) -> Generated {
        let calls = crate::metered::Call::start(&self.model);
        let generated = self.generate_unmetered(events, cancel, &calls).await;
        match &generated {
            Generated::Answer(output) => calls.completed(&output.usage),
            Generated::Failed(e) => calls.failed(e),
            Generated::Cancelled { .. } => calls.cancelled(),
        }
        generated
    }

    /// [`Turn::generate`] without its metrics (`calls` hears of the first
    /// text).
    async fn generate_unmetered(
        &self,
        events: &EventLog,
        cancel: Option<oneshot::Receiver<CancelRequest>>,
        calls: &crate::metered::Call,
    ) -> Generated {
        let request = ModelRequest {
            model: self.model.upstream_model.clone(),
            messages: self.context.iter().filter_map(chat_message).collect(),
            temperature: self.settings.temperature,
            top_p: self.settings.top_p,
            max_output_tokens: self.settings.max_output_tokens,
        };
        // Starting a stream may be CPU work (the echo model counts its
        // answer, which quotes the user's text): not on an async worker.
        let provider = std::sync::Arc::clone(&self.model.provider);
        // What a provider may count when it starts is at most its largest
        // text (the echo model counts its answer, which quotes one input).
        let bytes = request
            .messages
            .iter()
            .map(|m| m.content.len())
            .max()
            .unwrap_or(0);
        let mut stream = match cpu::run_for(bytes, move || provider.stream(request)).await {
            Ok(stream) => stream,
            Err(e) => return Generated::Failed(e),
        };
        let mut cancel = cancel.map(FutureExt::fuse);
        // A cancel request for this thread from another replica.
        let mut remote = self
            .target
            .as_ref()
            .map(|_| self.engine.store.signals().cancels());
        let heartbeat = self.engine.heartbeat;
        let mut text = String::new();
        loop {
            let cancelled = async {
                match cancel.as_mut() {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            };
            let asked_elsewhere = async {
                match (remote.as_mut(), self.target.as_ref()) {
                    (Some(rx), Some(thread)) => loop {
                        match rx.recv().await {
                            Ok(signal)
                                if signal.thread_id == thread.as_str()
                                    && signal.organization
                                        == self.scope.organization_id.as_str() =>
                            {
                                // The outcome goes into the stored events.
                                let (reply, _) = oneshot::channel();
                                return reply;
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await;
                            }
                            _ => {}
                        }
                    },
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(reply) = cancelled => return Generated::Cancelled { partial: text, reply },
                reply = asked_elsewhere => return Generated::Cancelled { partial: text, reply },
                next = tokio::time::timeout(heartbeat, stream.next()) => match next {
                    Err(_silence) => events.push(TurnEvent::Heartbeat),
                    Ok(Some(Ok(StreamEvent::Delta(delta)))) => {
                        if text.is_empty() {
                            calls.first_text();
                        }
                        text.push_str(&delta);
                        events.push(TurnEvent::Delta(delta));
                    }
                    Ok(Some(Ok(StreamEvent::Completed(output)))) => return Generated::Answer(output),
                    Ok(Some(Err(e))) => return Generated::Failed(e.into()),
                    Ok(None) => {
                        return Generated::Failed(
                            ProviderError::Upstream("the model stream ended without an answer".into())
                                .into(),
                        )
                    }
                },
            }
        }
    }

    /// The turn's one commit: its messages, the counters, the requested
    /// state, the stored response and the lease's release, in one
    /// transaction. On failure the lease is released and nothing is saved.
    async fn commit(
        self,
        output: ModelOutput,
        lease: &mut Option<LeaseGuard>,
    ) -> Result<Completed, EngineError> {
        let mut messages = self.inputs.clone();
        messages.push(NewMessage {
            id: Some(self.answer_id.clone()),
            response_id: Some(self.response_id.to_string()),
            model: Some(self.settings.model.clone()),
            ..NewMessage::text(
                MessageRole::Assistant,
                output.text.clone(),
                output.usage.output_tokens,
            )
        });
        let finished = self.engine.clock.now();
        let response = self.store.then(|| self.stored_response(&output, finished));
        let turn = FinishedTurn {
            messages,
            model: self.settings.model.clone(),
            thread_state: self.thread_state,
            response,
            rewind_from: self.rewind_from,
        };
        let saved = self.save(turn, lease).await;
        match saved {
            Ok(stored) => Ok(Completed {
                response_id: self.response_id.to_string(),
                created_at: self.created_at,
                model: self.settings.model.clone(),
                thread_id: self.target.as_ref().map(ToString::to_string),
                previous_response_id: self.previous_response_id.clone(),
                message_id: stored
                    .last()
                    .map(|m| m.id.to_string())
                    .unwrap_or_else(|| self.answer_id.to_string()),
                text: output.text,
                usage: output.usage,
                metadata: self.metadata.clone(),
                completed_at: Some(finished),
            }),
            Err(e) => {
                release(lease).await;
                Err(e)
            }
        }
    }

    /// Stops the turn: within the quick-cancel window nothing is kept;
    /// later (or whenever the process is shutting down) the user inputs and
    /// the partial answer are saved.
    async fn cancel(
        &self,
        started: Instant,
        partial: String,
        lease: &mut Option<LeaseGuard>,
    ) -> CancelOutcome {
        let elapsed = started.elapsed();
        let quick_edit = CancelOutcome {
            mode: CancelMode::QuickEdit,
            elapsed_seconds: elapsed.as_secs_f64(),
            user_message_deleted: true,
            assistant_response_deleted: true,
            partial_content_saved: false,
        };
        // A shutdown's cancel keeps what the turn has, however young.
        let quick = elapsed < self.engine.quick_cancel && !self.engine.running.draining();
        if self.target.is_none() || quick {
            release(lease).await;
            return quick_edit;
        }
        let mut messages = self.inputs.clone();
        let keep_answer = !partial.is_empty();
        if keep_answer {
            let (partial, tokens) = match cpu::count_one(partial).await {
                Ok(counted) => counted,
                Err(e) => {
                    log::error!(
                        "could not count the partial answer of {}: {e}",
                        self.response_id
                    );
                    release(lease).await;
                    return quick_edit;
                }
            };
            messages.push(NewMessage {
                id: Some(self.answer_id.clone()),
                response_id: Some(self.response_id.to_string()),
                model: Some(self.settings.model.clone()),
                ..NewMessage::text(MessageRole::Assistant, partial, tokens)
            });
        }
        let turn = FinishedTurn {
            messages,
            model: self.settings.model.clone(),
            thread_state: None,
            response: None,
            // A cancel that keeps the turn keeps its rewind too.
            rewind_from: self.rewind_from,
        };
        match self.save(turn, lease).await {
            Ok(_) => CancelOutcome {
                mode: CancelMode::KeepPartial,
                elapsed_seconds: elapsed.as_secs_f64(),
                user_message_deleted: false,
                assistant_response_deleted: !keep_answer,
                partial_content_saved: keep_answer,
            },
            Err(e) => {
                log::error!(
                    "could not save the partial turn of {}: {e}",
                    self.response_id
                );
                release(lease).await;
                quick_edit
            }
        }
    }

    /// The one trip of a commit; disarms the lease guard when it succeeds
    /// (the commit gave the lease back itself).
    async fn save(
        &self,
        turn: FinishedTurn,
        lease: &mut Option<LeaseGuard>,
    ) -> Result<Vec<skein_domain::Message>, EngineError> {
        let (scope, thread, lease_id, limits, now) = (
            self.scope.clone(),
            self.target.clone(),
            self.response_id.to_string(),
            self.engine.limits,
            self.engine.clock.now(),
        );
        let (_, stored) = self
            .engine
            .store
            .run(move |conn| {
                turns::commit(conn, &scope, thread.as_ref(), &lease_id, turn, &limits, now)
            })
            .await?;
        if let Some(guard) = lease.as_mut() {
            guard.armed = false;
        }
        Ok(stored)
    }

    fn stored_response(&self, output: &ModelOutput, finished: DateTime<Utc>) -> StoredResponse {
        StoredResponse {
            id: self.response_id.to_string(),
            scope: self.scope.clone(),
            thread_id: self.target.as_ref().map(ToString::to_string),
            previous_response_id: self.previous_response_id.clone(),
            model: self.settings.model.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|m| StoredInput {
                    role: m.role,
                    content: m.content.clone(),
                    tokens: m.token_count,
                    item: m.item.clone(),
                })
                .collect(),
            output_text: output.text.clone(),
            output_tokens: output.usage.output_tokens,
            input_tokens: output.usage.input_tokens,
            total_tokens: output.usage.total_tokens,
            settings: serde_json::json!({
                "instructions": self.settings.instructions,
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
                "max_output_tokens": self.settings.max_output_tokens,
                "truncation": if self.truncate { "auto" } else { "disabled" },
                "completed_at": finished.timestamp(),
            }),
            metadata: self.metadata.clone(),
            created_at: self.created_at,
        }
    }
}

/// Gives the turn's lease back now, if it holds one.
async fn release(lease: &mut Option<LeaseGuard>) {
    if let Some(guard) = lease.take() {
        guard.release().await;
    }
}

/// Whether a context item reaches a model: messages, and the items
/// [`chat_message`] makes a tool call or a tool result of. The others are
/// kept in the thread but neither sent nor counted against the window.
fn sendable(item: &ContextItem) -> bool {
    item.item.as_ref().is_none_or(|v| tool_part(v).is_some())
}

/// The tool call or tool result a `function_call` or `function_call_output`
/// item is; `None` for items of other types (reasoning, ...), which no
/// provider takes as they are stored.
fn tool_part(item: &Value) -> Option<ToolPart> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let call_id = item.get("call_id")?.as_str()?.to_string();
    match item.get("type").and_then(Value::as_str) {
        Some("function_call") => Some(ToolPart::Call {
            call_id,
            name: item.get("name")?.as_str()?.to_string(),
            arguments: item.get("arguments").map(text).unwrap_or_default(),
        }),
        Some("function_call_output") => Some(ToolPart::Output {
            call_id,
            output: item.get("output").map(output_text).unwrap_or_default(),
        }),
        _ => None,
    }
}

/// A context item as a provider's message: a message, or the tool call or
/// tool result of an item ([`tool_part`]); `None` for an item that is
/// neither.
fn chat_message(c: &ContextItem) -> Option<ChatMessage> {
    let tool = match &c.item {
        None => None,
        Some(item) => Some(tool_part(item)?),
    };
    let role = match tool {
        Some(ToolPart::Output { .. }) => Role::Tool,
        Some(ToolPart::Call { .. }) => Role::Assistant,
        None => provider_role(c.role),
    };
    Some(ChatMessage {
        role,
        content: if tool.is_some() {
            String::new()
        } else {
            c.content.clone()
        },
        tokens: Some(c.tokens),
        tool,
    })
}

/// A tool's output as text: a string as it is, text parts joined, anything
/// else as its JSON text.
fn output_text(output: &Value) -> String {
    match output {
        Value::String(s) => s.clone(),
        Value::Array(parts)
            if !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.get("text").is_some_and(Value::is_string)) =>
        {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        }
        other => other.to_string(),
    }
}

fn provider_role(r: ContextRole) -> Role {
    match r {
        ContextRole::System => Role::System,
        ContextRole::Developer => Role::Developer,
        ContextRole::User => Role::User,
        ContextRole::Assistant => Role::Assistant,
    }
}

/// Owns a thread's busy lease from the moment it is taken. Its one release
/// path, [`LeaseGuard::release`], runs on failure and on a quick cancel, and
/// from `Drop` (a panic, a dropped task) on the runtime in the background.
/// A successful commit releases the lease itself and disarms the guard.
#[derive(Debug)]
pub struct LeaseGuard {
    store: Store,
    scope: Scope,
    thread_id: ThreadId,
    lease_id: String,
    created: bool,
    armed: bool,
}

impl LeaseGuard {
    /// Gives the lease back at once on `conn` (a turn that fails while it
    /// opens, inside its own trip: the next request must not find the
    /// thread busy). If that fails, the guard's drop tries again.
    fn release_now(mut self, conn: &mut DbConnection) {
        if turns::release(
            conn,
            &self.scope,
            &self.thread_id,
            &self.lease_id,
            self.created,
        )
        .is_ok()
        {
            self.armed = false;
        }
    }

    /// Renews the lease every third of `ttl` while the returned task runs
    /// (abort it when the turn ends), so a long generation never loses its
    /// lease, and a dead process's lease lapses within `ttl`.
    fn keep_alive(
        &self,
        ttl: chrono::TimeDelta,
        clock: skein_domain::retention::Clock,
    ) -> tokio::task::AbortHandle {
        let (store, scope, thread, lease_id) = (
            self.store.clone(),
            self.scope.clone(),
            self.thread_id.clone(),
            self.lease_id.clone(),
        );
        let every = (ttl / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(100));
        tokio::spawn(crate::log_context::inherit(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (s, t, l) = (scope.clone(), thread.clone(), lease_id.clone());
                let until = clock.now() + ttl;
                match store
                    .run(move |conn| turns::renew(conn, &s, &t, &l, until))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        log::warn!("response {lease_id} lost the lease of {thread}");
                        return;
                    }
                    Err(e) => log::warn!("could not renew the lease of {thread}: {e}"),
                }
            }
        }))
        .abort_handle()
    }

    /// Gives the lease back now (and removes a thread this turn created and
    /// left empty). If that fails, the lease still lapses by itself.
    pub async fn release(mut self) {
        self.armed = false;
        release_lease(
            self.store.clone(),
            self.scope.clone(),
            self.thread_id.clone(),
            self.lease_id.clone(),
            self.created,
        )
        .await;
    }
}

async fn release_lease(
    store: Store,
    scope: Scope,
    thread_id: ThreadId,
    lease_id: String,
    created: bool,
) {
    let tid = thread_id.clone();
    if let Err(e) = store
        .run(move |conn| turns::release(conn, &scope, &tid, &lease_id, created))
        .await
    {
        // The lease expires by itself; the thread is blocked until then.
        log::error!("could not release the lease of {thread_id}: {e}");
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let release = release_lease(
            self.store.clone(),
            self.scope.clone(),
            self.thread_id.clone(),
            self.lease_id.clone(),
            self.created,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(crate::log_context::inherit(release));
            }
            Err(_) => log::warn!(
                "the lease of {} could not be released (no runtime); it lapses by itself",
                self.thread_id
            ),
        }
    }
}
