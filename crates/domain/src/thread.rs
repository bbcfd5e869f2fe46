//! The thread entity, its title, lifecycle and pinning rules.

use crate::{
    AssistantId, DomainError, Limits, MessageId, Metadata, OrganizationId, ThreadId, UserId,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Why a title was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    /// Longer than allowed.
    #[error("title must be at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
}

/// A non-empty thread title within the length limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ThreadTitle(String);

impl ThreadTitle {
    /// Checks a title. An empty string means "no title" and gives `None`.
    ///
    /// ```
    /// use skein_domain::ThreadTitle;
    /// assert_eq!(ThreadTitle::parse("Trip", 200).unwrap().unwrap().as_str(), "Trip");
    /// assert_eq!(ThreadTitle::parse("", 200).unwrap(), None);
    /// assert!(ThreadTitle::parse("x".repeat(201), 200).is_err());
    /// ```
    pub fn parse(s: impl Into<String>, max_chars: usize) -> Result<Option<Self>, TitleError> {
        let s = s.into();
        if s.is_empty() {
            return Ok(None);
        }
        if s.chars().count() > max_chars {
            return Err(TitleError::TooLong { max: max_chars });
        }
        Ok(Some(Self(s)))
    }

    /// Rebuilds a title read back from storage, where it was checked on write.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest `workflow_id`, in characters.
pub const MAX_WORKFLOW_ID_CHARS: usize = 256;

/// An opaque client label on a thread (`workflow_id`): 1 to
/// [`MAX_WORKFLOW_ID_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowId(String);

impl WorkflowId {
    /// Checks a label: not empty, at most [`MAX_WORKFLOW_ID_CHARS`] characters.
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        let n = s.chars().count();
        if n == 0 || n > MAX_WORKFLOW_ID_CHARS {
            return Err(format!(
                "workflow_id must be 1 to {MAX_WORKFLOW_ID_CHARS} characters"
            ));
        }
        Ok(Self(s))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The form of a title (or a search text) that the title search compares:
/// Unicode full case folding, so `search` is case-insensitive in every
/// script (`Straße` matches `STRASSE`).
pub fn fold_case(s: &str) -> String {
    caseless::default_case_fold_str(s)
}

/// The lifecycle state of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadState {
    /// Accepts new messages and responses (the default).
    Open,
    /// Read-only; can be unlocked back to open.
    Locked,
    /// Read-only and permanent.
    Archived,
}

/// A lifecycle transition that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a thread cannot move from {from} to {to}")]
pub struct InvalidStateTransition {
    /// The current state.
    pub from: ThreadState,
    /// The requested state.
    pub to: ThreadState,
}

impl ThreadState {
    /// Every state, in lifecycle order.
    pub const ALL: [ThreadState; 3] = [Self::Open, Self::Locked, Self::Archived];

    /// Moves to `to`: open->locked, locked->open, open->archived and
    /// locked->archived are allowed, and so is staying in the same state;
    /// everything else (leaving archived) is an error.
    ///
    /// ```
    /// use skein_domain::ThreadState;
    /// assert_eq!(ThreadState::Open.transition(ThreadState::Locked), Ok(ThreadState::Locked));
    /// assert_eq!(ThreadState::Locked.transition(ThreadState::Open), Ok(ThreadState::Open));
    /// assert!(ThreadState::Archived.transition(ThreadState::Open).is_err());
    /// ```
    pub fn transition(self, to: ThreadState) -> Result<ThreadState, InvalidStateTransition> {
        use ThreadState::*;
        match (self, to) {
            (a, b) if a == b => Ok(b),
            (Open, Locked) | (Locked, Open) | (Open, Archived) | (Locked, Archived) => Ok(to),
            (from, to) => Err(InvalidStateTransition { from, to }),
        }
    }

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Locked => "locked",
            Self::Archived => "archived",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a model response is being generated in the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    /// Nothing is running.
    Inactive,
    /// A model response is being generated.
    Streaming,
}

impl ThreadStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Streaming => "streaming",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inactive" => Some(Self::Inactive),
            "streaming" => Some(Self::Streaming),
            _ => None,
        }
    }
}

/// The longest `Retry-After` a busy thread answers with, in seconds.
pub const MAX_BUSY_RETRY_AFTER_SECS: u64 = 5;

/// The busy lease of a running model response: while it is unexpired the
/// thread reads `streaming` and a second response is refused. A lease left
/// by a crashed process simply expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Identifies the response holding the lease.
    pub id: String,
    /// When the lease lapses by itself.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// The one place `THREAD_BUSY`'s `Retry-After` is computed. The lease
    /// bounds a crashed response, not a running one: a response usually
    /// ends within seconds, so retrying clients are told to come back soon
    /// (1 to [`MAX_BUSY_RETRY_AFTER_SECS`] s) rather than when the lease
    /// lapses.
    pub fn busy(&self, now: DateTime<Utc>) -> DomainError {
        let remaining = (self.expires_at - now).num_milliseconds().max(0);
        let secs = u64::try_from((remaining + 999) / 1000).unwrap_or(1);
        DomainError::ThreadBusy {
            retry_after_secs: secs.clamp(1, MAX_BUSY_RETRY_AFTER_SECS),
        }
    }
}

/// A conversation thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Unique within the organization.
    pub(crate) id: ThreadId,
    /// The owning organization.
    pub(crate) organization_id: OrganizationId,
    /// The creator; the only user who can see the thread.
    pub(crate) user_id: UserId,
    /// Display name.
    pub(crate) title: Option<ThreadTitle>,
    /// User-defined key-value pairs.
    pub(crate) metadata: Metadata,
    /// The bound assistant.
    pub(crate) assistant_id: Option<AssistantId>,
    /// Whether a response is being generated.
    pub(crate) status: ThreadStatus,
    /// Lifecycle state.
    pub(crate) state: ThreadState,
    /// Number of stored messages.
    pub(crate) message_count: i64,
    /// Number of stored conversation items that are not messages (OpenAI's
    /// function calls, their outputs, ...): not in `message_count`, but
    /// the thread's limit bounds both together.
    pub(crate) item_count: i64,
    /// Shown in user interfaces.
    pub(crate) visible_in_ui: bool,
    /// The model of the last saved response.
    pub(crate) last_model_used: Option<String>,
    /// When it was pinned; `None` when not pinned.
    pub(crate) pinned_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub(crate) created_at: DateTime<Utc>,
    /// Last change of any field.
    pub(crate) updated_at: DateTime<Utc>,
    /// Time of the newest message.
    pub(crate) last_message_at: Option<DateTime<Utc>>,
    /// Soft-delete time.
    pub(crate) deleted_at: Option<DateTime<Utc>>,
    /// The lease of a running response, if any.
    pub(crate) lease: Option<Lease>,
    /// The user's model for this thread's responses (per-user settings):
    /// after the request's model, before the assistant's.
    pub(crate) model_override: Option<String>,
    /// An opaque label set by the client at creation (`workflow_id`).
    pub(crate) workflow_id: Option<String>,
    /// Deleted for good at `expected_deletion_at`, without a grace period.
    pub(crate) is_incognito: bool,
    /// When an incognito thread is deleted; `None` for the others.
    pub(crate) expected_deletion_at: Option<DateTime<Utc>>,
    /// An assistant message arrived after the owner last read the thread.
    pub(crate) has_unread: bool,
    /// The thread and message this thread was forked at (`None` for a
    /// thread that is not a fork).
    pub(crate) forked_from: Option<ForkedFrom>,
}

/// Where a fork starts: the parent thread and the last message it shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkedFrom {
    /// The parent thread.
    pub thread_id: ThreadId,
    /// The parent's last message the fork holds (`None`: the parent had no
    /// message when it was forked).
    pub message_id: Option<MessageId>,
}

/// What a fork takes over from its parent at the fork point.
#[derive(Debug, Clone)]
pub struct ForkPoint {
    /// Where it forks.
    pub from: ForkedFrom,
    /// Messages the fork holds from the parent.
    pub messages: i64,
    /// Other conversation items it holds from the parent.
    pub items: i64,
    /// Creation time of the last message it holds.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// A thread exactly as a store keeps it, to rebuild a [`Thread`] with
/// [`Thread::from_storage`]. Nothing here is checked: a store hands back
/// what the rules made, and only a store should build one.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredThread {
    /// Unique within the organization.
    pub id: ThreadId,
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// The creator.
    pub user_id: UserId,
    /// Display name.
    pub title: Option<ThreadTitle>,
    /// User-defined key-value pairs.
    pub metadata: Metadata,
    /// The bound assistant.
    pub assistant_id: Option<AssistantId>,
    /// Lifecycle state.
    pub state: ThreadState,
    /// Number of stored messages.
    pub message_count: i64,
    /// Number of stored conversation items that are not messages.
    pub item_count: i64,
    /// Shown in user interfaces.
    pub visible_in_ui: bool,
    /// The model of the last saved response.
    pub last_model_used: Option<String>,
    /// When it was pinned.
    pub pinned_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of any field.
    pub updated_at: DateTime<Utc>,
    /// Time of the newest message.
    pub last_message_at: Option<DateTime<Utc>>,
    /// Soft-delete time.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The lease of a running response, expired or not.
    pub lease: Option<Lease>,
    /// The user's model for this thread's responses.
    pub model_override: Option<String>,
    /// The client's label.
    pub workflow_id: Option<String>,
    /// Deleted for good at `expected_deletion_at`.
    pub is_incognito: bool,
    /// When an incognito thread is deleted.
    pub expected_deletion_at: Option<DateTime<Utc>>,
    /// An assistant message arrived after the owner last read the thread.
    pub has_unread: bool,
    /// Where a fork comes from.
    pub forked_from: Option<ForkedFrom>,
}

impl Thread {
    /// Rebuilds a thread a store kept (see [`StoredThread`]). Its `status`
    /// follows from the lease at `now`: a lease that has expired (left by a
    /// process that died) reads as inactive without anyone cleaning it up.
    ///
    /// ```
    /// use chrono::{TimeDelta, Utc};
    /// use skein_domain::{Lease, Thread, ThreadStatus};
    /// # use skein_domain::{Metadata, NewThread, OrganizationId, ThreadId, UserId};
    /// # let now = Utc::now();
    /// # let thread = Thread::new(NewThread { id: ThreadId::parse("t1").unwrap(),
    /// #     organization_id: OrganizationId::parse("org_a").unwrap(),
    /// #     user_id: UserId::parse("usr_a").unwrap(), title: None, metadata: Metadata::empty(),
    /// #     assistant_id: None, visible_in_ui: true, workflow_id: None, incognito_ttl: None }, now);
    /// let mut stored = thread.to_storage();
    /// stored.lease = Some(Lease { id: "resp_1".into(), expires_at: now + TimeDelta::minutes(1) });
    /// let running = Thread::from_storage(stored.clone(), now);
    /// assert_eq!(running.status(), ThreadStatus::Streaming);
    /// // The same row read after the lease lapsed: nobody holds the thread.
    /// let later = Thread::from_storage(stored, now + TimeDelta::minutes(2));
    /// assert_eq!(later.status(), ThreadStatus::Inactive);
    /// ```
    pub fn from_storage(s: StoredThread, now: DateTime<Utc>) -> Self {
        let streaming = s.lease.as_ref().is_some_and(|l| l.expires_at > now);
        Self {
            id: s.id,
            organization_id: s.organization_id,
            user_id: s.user_id,
            title: s.title,
            metadata: s.metadata,
            assistant_id: s.assistant_id,
            status: if streaming {
                ThreadStatus::Streaming
            } else {
                ThreadStatus::Inactive
            },
            state: s.state,
            message_count: s.message_count,
            item_count: s.item_count,
            visible_in_ui: s.visible_in_ui,
            last_model_used: s.last_model_used,
            pinned_at: s.pinned_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_message_at: s.last_message_at,
            deleted_at: s.deleted_at,
            lease: s.lease,
            model_override: s.model_override,
            workflow_id: s.workflow_id,
            is_incognito: s.is_incognito,
            expected_deletion_at: s.expected_deletion_at,
            has_unread: s.has_unread,
            forked_from: s.forked_from,
        }
    }

    /// The thread as a store keeps it: the inverse of
    /// [`Thread::from_storage`] (the status is not kept; it follows from
    /// the lease).
    pub fn to_storage(&self) -> StoredThread {
        StoredThread {
            id: self.id.clone(),
            organization_id: self.organization_id.clone(),
            user_id: self.user_id.clone(),
            title: self.title.clone(),
            metadata: self.metadata.clone(),
            assistant_id: self.assistant_id.clone(),
            state: self.state,
            message_count: self.message_count,
            item_count: self.item_count,
            visible_in_ui: self.visible_in_ui,
            last_model_used: self.last_model_used.clone(),
            pinned_at: self.pinned_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_message_at: self.last_message_at,
            deleted_at: self.deleted_at,
            lease: self.lease.clone(),
            model_override: self.model_override.clone(),
            workflow_id: self.workflow_id.clone(),
            is_incognito: self.is_incognito,
            expected_deletion_at: self.expected_deletion_at,
            has_unread: self.has_unread,
            forked_from: self.forked_from.clone(),
        }
    }

    /// Unique within the organization.
    pub fn id(&self) -> &ThreadId {
        &self.id
    }
    /// The owning organization.
    pub fn organization_id(&self) -> &OrganizationId {
        &self.organization_id
    }
    /// The creator; the only user who can see the thread.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
    /// Display name.
    pub fn title(&self) -> Option<&ThreadTitle> {
        self.title.as_ref()
    }
    /// User-defined key-value pairs.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    /// The bound assistant.
    pub fn assistant_id(&self) -> Option<&AssistantId> {
        self.assistant_id.as_ref()
    }
    /// Whether a response is being generated.
    pub fn status(&self) -> ThreadStatus {
        self.status
    }
    /// Lifecycle state.
    pub fn state(&self) -> ThreadState {
        self.state
    }
    /// Number of stored messages.
    pub fn message_count(&self) -> i64 {
        self.message_count
    }
    /// Number of stored conversation items that are not messages.
    pub fn item_count(&self) -> i64 {
        self.item_count
    }
    /// Shown in user interfaces.
    pub fn visible_in_ui(&self) -> bool {
        self.visible_in_ui
    }
    /// The model of the last saved response.
    pub fn last_model_used(&self) -> Option<&str> {
        self.last_model_used.as_deref()
    }
    /// When it was pinned; `None` when not pinned.
    pub fn pinned_at(&self) -> Option<DateTime<Utc>> {
        self.pinned_at
    }
    /// Creation time.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// Last change of any field.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
    /// Time of the newest message.
    pub fn last_message_at(&self) -> Option<DateTime<Utc>> {
        self.last_message_at
    }
    /// Soft-delete time.
    pub fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.deleted_at
    }
    /// The lease of a running response, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
    /// The user's model for this thread's responses (per-user settings).
    pub fn model_override(&self) -> Option<&str> {
        self.model_override.as_deref()
    }
    /// An opaque label set by the client at creation (`workflow_id`).
    pub fn workflow_id(&self) -> Option<&str> {
        self.workflow_id.as_deref()
    }
    /// Deleted for good at `expected_deletion_at`, without a grace period.
    pub fn is_incognito(&self) -> bool {
        self.is_incognito
    }
    /// When an incognito thread is deleted; `None` for the others.
    pub fn expected_deletion_at(&self) -> Option<DateTime<Utc>> {
        self.expected_deletion_at
    }
    /// An assistant message arrived after the owner last read the thread.
    pub fn has_unread(&self) -> bool {
        self.has_unread
    }
    /// The thread and message this thread was forked at.
    pub fn forked_from(&self) -> Option<&ForkedFrom> {
        self.forked_from.as_ref()
    }

    /// The thread after a response of `model` was saved in it.
    pub fn record_model(&self, model: String) -> Thread {
        Thread {
            last_model_used: Some(model),
            ..self.clone()
        }
    }

    /// The thread moved to lifecycle state `to`, if the state machine
    /// allows it (see [`ThreadState::transition`]).
    pub fn transition(&self, to: ThreadState) -> Result<Thread, DomainError> {
        Ok(Thread {
            state: self.state.transition(to)?,
            ..self.clone()
        })
    }
}

/// What a caller provides to create a thread (already parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct NewThread {
    /// The id (server-made or named by the client).
    pub id: ThreadId,
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// The creator.
    pub user_id: UserId,
    /// Display name.
    pub title: Option<ThreadTitle>,
    /// User-defined key-value pairs.
    pub metadata: Metadata,
    /// The bound assistant.
    pub assistant_id: Option<AssistantId>,
    /// Shown in user interfaces.
    pub visible_in_ui: bool,
    /// An opaque label (`workflow_id`).
    pub workflow_id: Option<WorkflowId>,
    /// `Some(ttl)` makes the thread incognito: it is deleted for good `ttl`
    /// after its creation.
    pub incognito_ttl: Option<TimeDelta>,
}

/// A partial update. `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadPatch {
    /// `Some(None)` clears the title.
    pub title: Option<Option<ThreadTitle>>,
    /// Merged into the existing metadata; keys set to `null` are removed.
    pub metadata: Option<Map<String, Value>>,
    /// A new assistant binding.
    pub assistant_id: Option<AssistantId>,
    /// New visibility.
    pub visible_in_ui: Option<bool>,
    /// A lifecycle transition.
    pub state: Option<ThreadState>,
}

impl Thread {
    /// A new open, inactive, unpinned thread with no messages.
    pub fn new(new: NewThread, now: DateTime<Utc>) -> Self {
        Self {
            id: new.id,
            organization_id: new.organization_id,
            user_id: new.user_id,
            title: new.title,
            metadata: new.metadata,
            assistant_id: new.assistant_id,
            status: ThreadStatus::Inactive,
            state: ThreadState::Open,
            message_count: 0,
            item_count: 0,
            visible_in_ui: new.visible_in_ui,
            last_model_used: None,
            pinned_at: None,
            created_at: now,
            updated_at: now,
            last_message_at: None,
            deleted_at: None,
            lease: None,
            model_override: None,
            workflow_id: new.workflow_id.map(WorkflowId::into_string),
            is_incognito: new.incognito_ttl.is_some(),
            expected_deletion_at: new
                .incognito_ttl
                .and_then(|ttl| now.checked_add_signed(ttl)),
            has_unread: false,
            forked_from: None,
        }
    }

    /// A new thread `id` of the same owner holding this thread's history up
    /// to `at` (a fork): open, inactive, unpinned and read, with its own
    /// title and metadata (this thread's unless given), the same assistant,
    /// visibility, and incognito deadline (a fork of an incognito thread
    /// goes when its parent goes), no lease and no workflow label.
    pub fn fork(
        &self,
        id: ThreadId,
        at: ForkPoint,
        title: Option<Option<ThreadTitle>>,
        metadata: Option<Metadata>,
        now: DateTime<Utc>,
    ) -> Thread {
        Thread {
            id,
            organization_id: self.organization_id.clone(),
            user_id: self.user_id.clone(),
            title: title.unwrap_or_else(|| self.title.clone()),
            metadata: metadata.unwrap_or_else(|| self.metadata.clone()),
            assistant_id: self.assistant_id.clone(),
            status: ThreadStatus::Inactive,
            state: ThreadState::Open,
            message_count: at.messages,
            item_count: at.items,
            visible_in_ui: self.visible_in_ui,
            last_model_used: self.last_model_used.clone(),
            pinned_at: None,
            created_at: now,
            updated_at: now,
            last_message_at: at.last_message_at,
            deleted_at: None,
            lease: None,
            model_override: None,
            workflow_id: None,
            is_incognito: self.is_incognito,
            expected_deletion_at: self.expected_deletion_at,
            has_unread: false,
            forked_from: Some(at.from),
        }
    }

    /// New messages and responses need an open thread (423 otherwise).
    pub fn check_writable(&self) -> Result<(), DomainError> {
        match self.state {
            ThreadState::Open => Ok(()),
            ThreadState::Locked => Err(DomainError::ThreadLocked),
            ThreadState::Archived => Err(DomainError::ThreadArchived),
        }
    }

    /// Accounts for `n` appended messages: the thread must be open and stay
    /// within the message limit; `message_count`, `last_message_at` and
    /// `updated_at` move.
    pub fn record_appended(
        &self,
        n: u32,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> Result<Thread, DomainError> {
        self.record_entries(n, 0, limits, now)
    }

    /// Accounts for `messages` appended messages and `items` other
    /// conversation items: the thread must be open, and its messages and
    /// items together stay within the message limit. `last_message_at`
    /// moves only with a message.
    pub fn record_entries(
        &self,
        messages: u32,
        items: u32,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> Result<Thread, DomainError> {
        self.check_writable()?;
        let after = self.message_count + self.item_count + i64::from(messages) + i64::from(items);
        if after > i64::from(limits.max_messages_per_thread) {
            return Err(DomainError::MessageLimit {
                max: limits.max_messages_per_thread,
            });
        }
        Ok(Thread {
            message_count: self.message_count + i64::from(messages),
            item_count: self.item_count + i64::from(items),
            last_message_at: if messages > 0 {
                Some(now)
            } else {
                self.last_message_at
            },
            updated_at: now,
            ..self.clone()
        })
    }

    /// Accounts for `messages` messages and `items` other items removed by
    /// a rewind (the turn that rewinds then appends its own, see
    /// [`Thread::record_entries`]).
    pub fn record_rewound(&self, messages: u32, items: u32) -> Thread {
        Thread {
            message_count: (self.message_count - i64::from(messages)).max(0),
            item_count: (self.item_count - i64::from(items)).max(0),
            ..self.clone()
        }
    }

    /// Accounts for one deleted conversation item that is not a message.
    pub fn record_item_removed(&self, now: DateTime<Utc>) -> Result<Thread, DomainError> {
        self.check_writable()?;
        Ok(Thread {
            item_count: (self.item_count - 1).max(0),
            updated_at: now,
            ..self.clone()
        })
    }

    /// Accounts for one deleted message; `newest_remaining` is the creation
    /// time of the newest message left, if any.
    pub fn record_removed(
        &self,
        newest_remaining: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Thread, DomainError> {
        self.check_writable()?;
        Ok(Thread {
            message_count: (self.message_count - 1).max(0),
            last_message_at: newest_remaining,
            updated_at: now,
            ..self.clone()
        })
    }

    /// True while a response holds an unexpired lease.
    pub fn is_busy(&self, now: DateTime<Utc>) -> bool {
        self.lease.as_ref().is_some_and(|l| l.expires_at > now)
    }

    /// Takes the busy lease for a new response: the thread must be open and
    /// not already generating.
    pub fn acquire_lease(
        &self,
        id: String,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<Thread, DomainError> {
        self.check_writable()?;
        if let Some(lease) = self.lease.as_ref().filter(|l| l.expires_at > now) {
            return Err(lease.busy(now));
        }
        Ok(Thread {
            lease: Some(Lease {
                id,
                expires_at: now + ttl,
            }),
            status: ThreadStatus::Streaming,
            ..self.clone()
        })
    }

    /// The lease-holder rule of a turn's save: `id` may write the turn when
    /// it still holds the lease, or when no other response holds an
    /// unexpired one (its own lease lapsed and nobody took it over).
    pub fn check_lease_holder(&self, id: &str, now: DateTime<Utc>) -> Result<(), DomainError> {
        match self
            .lease
            .as_ref()
            .filter(|l| l.id != id && l.expires_at > now)
        {
            Some(other) => Err(other.busy(now)),
            None => Ok(()),
        }
    }

    /// Gives the lease back (a no-op when `id` no longer holds it).
    pub fn release_lease(&self, id: &str) -> Thread {
        if self.lease.as_ref().is_some_and(|l| l.id == id) {
            Thread {
                lease: None,
                status: ThreadStatus::Inactive,
                ..self.clone()
            }
        } else {
            self.clone()
        }
    }

    /// True when pinned.
    pub fn is_pinned(&self) -> bool {
        self.pinned_at.is_some()
    }

    /// Applies a partial update, all or nothing: the state transition, the
    /// metadata merge and the assistant binding rule must all hold.
    /// Any successful update moves `updated_at`.
    pub fn apply(
        &self,
        patch: ThreadPatch,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> Result<Thread, DomainError> {
        let mut next = self.clone();
        if let Some(to) = patch.state {
            next.state = self.state.transition(to)?;
        }
        if let Some(changes) = patch.metadata {
            next.metadata = self.metadata.merge(changes, &limits.metadata)?;
        }
        if let Some(assistant) = patch.assistant_id {
            if self.assistant_id.as_ref() != Some(&assistant) {
                if self.message_count > 0 {
                    return Err(DomainError::AssistantBindingLocked);
                }
                next.assistant_id = Some(assistant);
            }
        }
        if let Some(title) = patch.title {
            next.title = title;
        }
        if let Some(visible) = patch.visible_in_ui {
            next.visible_in_ui = visible;
        }
        next.updated_at = now;
        Ok(next)
    }

    /// Pins the thread, given how many threads the owner already has pinned
    /// in this organization. Pinning a pinned thread keeps its `pinned_at`.
    pub fn pin(
        &self,
        pinned_count: u32,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> Result<Thread, DomainError> {
        if self.is_pinned() {
            return Ok(self.clone());
        }
        if pinned_count >= limits.max_pinned_threads {
            return Err(DomainError::PinLimit {
                max: limits.max_pinned_threads,
            });
        }
        Ok(Thread {
            pinned_at: Some(now),
            ..self.clone()
        })
    }

    /// Unpins the thread (a no-op when it is not pinned).
    pub fn unpin(&self) -> Thread {
        Thread {
            pinned_at: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use serde_json::json;
    use ThreadState::*;

    fn thread() -> Thread {
        Thread::new(
            NewThread {
                id: ThreadId::generate(),
                organization_id: OrganizationId::generate(),
                user_id: UserId::generate(),
                title: None,
                metadata: Metadata::empty(),
                assistant_id: None,
                visible_in_ui: true,
                workflow_id: None,
                incognito_ttl: None,
            },
            clock::now(),
        )
    }

    #[test]
    fn a_new_thread_is_open_inactive_unpinned_and_empty() {
        let t = thread();
        assert_eq!(t.state, Open);
        assert_eq!(t.status, ThreadStatus::Inactive);
        assert_eq!(t.message_count, 0);
        assert!(!t.is_pinned());
        assert_eq!(t.created_at, t.updated_at);
        assert!(t.last_message_at.is_none());
    }

    #[test]
    fn every_allowed_transition_succeeds() {
        for (from, to) in [
            (Open, Locked),
            (Locked, Open),
            (Open, Archived),
            (Locked, Archived),
        ] {
            assert_eq!(from.transition(to), Ok(to), "{from} -> {to}");
        }
    }

    #[test]
    fn setting_the_current_state_again_is_a_no_op() {
        for s in ThreadState::ALL {
            assert_eq!(s.transition(s), Ok(s));
        }
    }

    #[test]
    fn archived_cannot_go_back_to_open_or_locked() {
        assert_eq!(
            Archived.transition(Open),
            Err(InvalidStateTransition {
                from: Archived,
                to: Open
            })
        );
        assert_eq!(
            Archived.transition(Locked),
            Err(InvalidStateTransition {
                from: Archived,
                to: Locked
            })
        );
    }

    #[test]
    fn exactly_the_contracts_transitions_are_allowed() {
        let mut allowed = 0;
        for from in ThreadState::ALL {
            for to in ThreadState::ALL {
                if from != to && from.transition(to).is_ok() {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, 4);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in ThreadState::ALL {
            assert_eq!(ThreadState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ThreadState::parse("closed"), None);
    }

    #[test]
    fn a_200_character_title_passes_and_201_fails() {
        assert!(ThreadTitle::parse("t".repeat(200), 200).unwrap().is_some());
        assert_eq!(
            ThreadTitle::parse("t".repeat(201), 200),
            Err(TitleError::TooLong { max: 200 })
        );
    }

    #[test]
    fn title_length_counts_characters() {
        assert!(ThreadTitle::parse("ü".repeat(200), 200).unwrap().is_some());
    }

    #[test]
    fn an_empty_title_means_no_title() {
        assert_eq!(ThreadTitle::parse("", 200), Ok(None));
    }

    #[test]
    fn a_patch_merges_metadata_and_moves_updated_at() {
        let mut t = thread();
        t.metadata = Metadata::parse_value(json!({"a": 1, "b": 2}), &Default::default()).unwrap();
        let later = t.updated_at + chrono::TimeDelta::seconds(5);
        let patched = t
            .apply(
                ThreadPatch {
                    metadata: Some(json!({"b": null, "c": 3}).as_object().unwrap().clone()),
                    ..Default::default()
                },
                &Limits::default(),
                later,
            )
            .unwrap();
        assert_eq!(patched.metadata.to_value(), json!({"a": 1, "c": 3}));
        assert_eq!(patched.updated_at, later);
        assert_eq!(patched.created_at, t.created_at);
    }

    #[test]
    fn a_patch_with_an_invalid_transition_changes_nothing() {
        let mut t = thread();
        t.state = Archived;
        let err = t
            .apply(
                ThreadPatch {
                    title: Some(ThreadTitle::parse("new", 200).unwrap()),
                    state: Some(Open),
                    ..Default::default()
                },
                &Limits::default(),
                clock::now(),
            )
            .unwrap_err();
        assert!(matches!(err, DomainError::Transition(_)));
    }

    #[test]
    fn title_and_metadata_can_change_in_an_archived_thread() {
        let mut t = thread();
        t.state = Archived;
        let patched = t
            .apply(
                ThreadPatch {
                    title: Some(ThreadTitle::parse("kept", 200).unwrap()),
                    metadata: Some(json!({"k": "v"}).as_object().unwrap().clone()),
                    ..Default::default()
                },
                &Limits::default(),
                clock::now(),
            )
            .unwrap();
        assert_eq!(patched.title.unwrap().as_str(), "kept");
        assert_eq!(patched.state, Archived);
    }

    #[test]
    fn a_patch_can_clear_the_title() {
        let mut t = thread();
        t.title = ThreadTitle::parse("old", 200).unwrap();
        let patched = t
            .apply(
                ThreadPatch {
                    title: Some(None),
                    ..Default::default()
                },
                &Limits::default(),
                clock::now(),
            )
            .unwrap();
        assert!(patched.title.is_none());
    }

    #[test]
    fn the_assistant_can_change_only_while_the_thread_has_no_messages() {
        let t = thread();
        let a = AssistantId::generate();
        let bound = t
            .apply(
                ThreadPatch {
                    assistant_id: Some(a.clone()),
                    ..Default::default()
                },
                &Limits::default(),
                clock::now(),
            )
            .unwrap();
        assert_eq!(bound.assistant_id, Some(a.clone()));

        let mut busy = bound.clone();
        busy.message_count = 1;
        assert_eq!(
            busy.apply(
                ThreadPatch {
                    assistant_id: Some(AssistantId::generate()),
                    ..Default::default()
                },
                &Limits::default(),
                clock::now(),
            ),
            Err(DomainError::AssistantBindingLocked)
        );
        // Naming the assistant it already has is not a change.
        assert!(busy
            .apply(
                ThreadPatch {
                    assistant_id: Some(a),
                    ..Default::default()
                },
                &Limits::default(),
                clock::now(),
            )
            .is_ok());
    }

    #[test]
    fn the_20th_pin_succeeds_and_the_21st_fails() {
        let t = thread();
        let limits = Limits::default();
        assert!(t.pin(19, &limits, clock::now()).unwrap().is_pinned());
        assert_eq!(
            t.pin(20, &limits, clock::now()),
            Err(DomainError::PinLimit { max: 20 })
        );
    }

    #[test]
    fn pinning_a_pinned_thread_keeps_its_pin_time_even_at_the_limit() {
        let t = thread().pin(0, &Limits::default(), clock::now()).unwrap();
        let again = t.pin(20, &Limits::default(), clock::now()).unwrap();
        assert_eq!(again.pinned_at, t.pinned_at);
    }

    #[test]
    fn messages_need_an_open_thread() {
        let mut t = thread();
        assert!(t.check_writable().is_ok());
        t.state = Locked;
        assert_eq!(t.check_writable(), Err(DomainError::ThreadLocked));
        t.state = Archived;
        assert_eq!(t.check_writable(), Err(DomainError::ThreadArchived));
    }

    #[test]
    fn the_message_limit_is_exact() {
        let limits = Limits {
            max_messages_per_thread: 10,
            ..Limits::default()
        };
        let now = clock::now();
        let t = thread().record_appended(8, &limits, now).unwrap();
        assert_eq!(t.message_count, 8);
        assert_eq!(t.last_message_at, Some(now));
        let full = t.record_appended(2, &limits, now).unwrap();
        assert_eq!(full.message_count, 10);
        assert_eq!(
            t.record_appended(3, &limits, now),
            Err(DomainError::MessageLimit { max: 10 })
        );
    }

    #[test]
    fn a_second_lease_is_refused_until_the_first_is_released_or_expires() {
        let now = clock::now();
        let ttl = TimeDelta::seconds(30);
        let leased = thread().acquire_lease("a".into(), ttl, now).unwrap();
        assert_eq!(leased.status, ThreadStatus::Streaming);
        assert!(leased.is_busy(now));
        assert_eq!(
            leased.acquire_lease("b".into(), ttl, now + TimeDelta::seconds(10)),
            Err(DomainError::ThreadBusy {
                retry_after_secs: 5
            }),
            "20 s of lease left, but clients are told to retry within 5 s"
        );
        assert_eq!(
            leased.acquire_lease("b".into(), ttl, now + TimeDelta::milliseconds(29_500)),
            Err(DomainError::ThreadBusy {
                retry_after_secs: 1
            })
        );
        // Someone else's release does nothing; the holder's frees the thread.
        assert!(leased.release_lease("b").is_busy(now));
        let released = leased.release_lease("a");
        assert_eq!(released.status, ThreadStatus::Inactive);
        assert!(released.acquire_lease("b".into(), ttl, now).is_ok());
        // A crashed holder's lease lapses by itself.
        let later = now + ttl + TimeDelta::milliseconds(1);
        assert!(!leased.is_busy(later));
        assert!(leased.acquire_lease("c".into(), ttl, later).is_ok());
    }

    #[test]
    fn a_locked_thread_cannot_take_a_lease() {
        let mut t = thread();
        t.state = Locked;
        assert_eq!(
            t.acquire_lease("a".into(), TimeDelta::seconds(1), clock::now()),
            Err(DomainError::ThreadLocked)
        );
    }

    #[test]
    fn unpinning_clears_the_pin_time() {
        let t = thread().pin(0, &Limits::default(), clock::now()).unwrap();
        assert!(!t.unpin().is_pinned());
    }

    #[test]
    fn items_count_toward_the_limit_but_not_as_messages() {
        let now = clock::now();
        let limits = Limits {
            max_messages_per_thread: 5,
            ..Limits::default()
        };
        let t = thread().record_entries(1, 0, &limits, now).unwrap();
        let later = now + chrono::TimeDelta::seconds(1);
        let t = t.record_entries(0, 3, &limits, later).unwrap();
        assert_eq!((t.message_count, t.item_count), (1, 3));
        assert_eq!(t.last_message_at, Some(now), "items are no messages");
        assert_eq!(t.updated_at, later);
        assert!(matches!(
            t.record_entries(1, 1, &limits, later),
            Err(DomainError::MessageLimit { max: 5 })
        ));
        let t = t.record_item_removed(later).unwrap();
        assert_eq!((t.message_count, t.item_count), (1, 2));
        let t = t.record_rewound(1, 2);
        assert_eq!((t.message_count, t.item_count), (0, 0));
        assert!(t.record_entries(2, 3, &limits, later).is_ok());
    }
}
