//! The stored events of thread responses (for reconnecting to a stream from
//! any replica), and the signals that wake the readers of those events and
//! carry cancel requests between replicas.
//!
//! A row holds a run of a response's events, `first_seq..=last_seq`, as an
//! opaque JSON text that the engine writes and reads. Writing a row wakes
//! the readers of its thread: in this process through [`Signals`], and on
//! PostgreSQL in every replica through `NOTIFY skein_events` (delivered at
//! commit), which each replica's [`listen`] task turns into the same local
//! signal. A cancel request for a response running elsewhere travels as
//! `NOTIFY skein_cancel`.

use crate::connection::{write_transaction_as, Durability};
use crate::rows::{to_naive, to_utc};
use crate::schema::{messages, response_events, threads};
use crate::{DbConnection, Scope, StoreError};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{broadcast, watch};

/// The PostgreSQL channel that says "events were written for thread pk N".
pub const EVENTS_CHANNEL: &str = "skein_events";
/// The PostgreSQL channel that asks the replica running a thread's response
/// to cancel it.
pub const CANCEL_CHANNEL: &str = "skein_cancel";

/// A stored run of events.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct EventRow {
    /// The sequence number of the run's first event.
    pub first_seq: i64,
    /// The sequence number of its last event.
    pub last_seq: i64,
    /// The events, as the engine encoded them.
    pub events: String,
    /// The run ends the response.
    pub terminal: bool,
}

/// Where a thread's responses stand, for a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    /// The thread's row id (what the signals are keyed by).
    pub thread_pk: i64,
    /// The response to follow: the running one, else the newest with stored
    /// events, else the newest saved one; `None` when the thread has had no
    /// response.
    pub response_id: Option<String>,
    /// The response holds a live lease (it is running somewhere).
    pub running: bool,
}

/// Finds the caller's thread and the response a reconnect follows.
pub fn locate(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    now: DateTime<Utc>,
) -> Result<StreamTarget, StoreError> {
    let (key, thread) = crate::threads::load_live_for_read(conn, scope, thread_id)?;
    let live_lease = thread
        .lease()
        .as_ref()
        .filter(|l| l.expires_at > now)
        .map(|l| l.id.clone());
    if let Some(id) = live_lease {
        return Ok(StreamTarget {
            thread_pk: key.pk,
            response_id: Some(id),
            running: true,
        });
    }
    let newest_events: Option<String> = response_events::table
        .filter(response_events::thread_pk.eq(key.pk))
        .order(response_events::pk.desc())
        .select(response_events::response_id)
        .first(conn)
        .optional()?;
    let newest = match newest_events {
        Some(id) => Some(id),
        None => saved_response_of_thread(conn, key.pk, thread.created_at())?,
    };
    Ok(StreamTarget {
        thread_pk: key.pk,
        response_id: newest,
        running: false,
    })
}

/// The response of the thread's newest saved message that has one, among
/// the messages saved in this thread (not before it existed: a fork's copies
/// of its parent's history keep their response ids, and the parent's answer
/// is not the fork's).
fn saved_response_of_thread(
    conn: &mut DbConnection,
    thread_pk: i64,
    created_at: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(messages::table
        .filter(messages::thread_pk.eq(thread_pk))
        .filter(messages::response_id.is_not_null())
        .filter(messages::created_at.ge(crate::rows::to_naive(created_at)))
        .order(messages::seq.desc())
        .select(messages::response_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Whether `response_id` still holds a live lease on the thread.
pub fn is_running(
    conn: &mut DbConnection,
    thread_pk: i64,
    response_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let lease: Option<(Option<String>, Option<chrono::NaiveDateTime>)> = threads::table
        .filter(threads::pk.eq(thread_pk))
        .select((threads::lease_id, threads::lease_expires_at))
        .first(conn)
        .optional()?;
    Ok(matches!(
        lease,
        Some((Some(id), Some(until))) if id == response_id && to_utc(until) > now
    ))
}

/// The response's stored runs holding events after `after`, in order.
pub fn after(
    conn: &mut DbConnection,
    thread_pk: i64,
    response_id: &str,
    after: i64,
) -> Result<Vec<EventRow>, StoreError> {
    Ok(response_events::table
        .filter(response_events::thread_pk.eq(thread_pk))
        .filter(response_events::response_id.eq(response_id))
        .filter(response_events::last_seq.gt(after))
        .order(response_events::pk.asc())
        .select((
            response_events::first_seq,
            response_events::last_seq,
            response_events::events,
            response_events::terminal,
        ))
        .load(conn)?)
}

/// A saved message of a response (for a completion rebuilt from them).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct SavedMessage {
    /// The message id.
    pub id: String,
    /// `user`, `assistant`, ...
    pub role: String,
    /// The text.
    pub content: String,
    /// Its tokens.
    pub tokens: i64,
    /// The model that wrote it (answers only).
    pub model: Option<String>,
    /// When it was saved.
    pub created_at: chrono::NaiveDateTime,
}

/// The saved messages of a response in the thread (its inputs and its
/// answer), oldest first; conversation items that are not messages are left
/// out.
pub fn saved_messages(
    conn: &mut DbConnection,
    thread_pk: i64,
    response_id: &str,
) -> Result<Vec<SavedMessage>, StoreError> {
    Ok(messages::table
        .filter(messages::thread_pk.eq(thread_pk))
        .filter(messages::response_id.eq(response_id))
        .filter(messages::kind.eq(crate::rows::MESSAGE_KIND))
        .order(messages::seq.asc())
        .select((
            messages::id,
            messages::role,
            messages::content,
            messages::token_count,
            messages::model,
            messages::created_at,
        ))
        .load(conn)?)
}

/// Whether any event of the response is stored.
pub fn has_events(
    conn: &mut DbConnection,
    thread_pk: i64,
    response_id: &str,
) -> Result<bool, StoreError> {
    Ok(response_events::table
        .filter(response_events::thread_pk.eq(thread_pk))
        .filter(response_events::response_id.eq(response_id))
        .select(response_events::pk)
        .first::<i64>(conn)
        .optional()?
        .is_some())
}

/// One run of events to store.
#[derive(Debug, Clone)]
pub struct NewEvents {
    /// The sequence number of the run's first event.
    pub first_seq: i64,
    /// The sequence number of its last event.
    pub last_seq: i64,
    /// The encoded events.
    pub events: String,
    /// The run ends the response.
    pub terminal: bool,
}

/// Stores a run of a response's events and, on PostgreSQL, tells every
/// replica (at commit). Relaxed durability: a crash may lose the newest
/// events, never a saved turn.
pub fn append(
    conn: &mut DbConnection,
    thread_pk: i64,
    response_id: &str,
    run: &NewEvents,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    write_transaction_as(conn, Durability::Relaxed, |conn| {
        if let DbConnection::Postgresql(c) = conn {
            // The row and the wake-up of every replica in one round trip.
            StoreRun {
                thread_pk,
                response_id,
                run,
                created_at: to_naive(now),
            }
            .execute(c)?;
            return Ok(());
        }
        diesel::insert_into(response_events::table)
            .values((
                response_events::thread_pk.eq(thread_pk),
                response_events::response_id.eq(response_id),
                response_events::first_seq.eq(run.first_seq),
                response_events::last_seq.eq(run.last_seq),
                response_events::events.eq(&run.events),
                response_events::terminal.eq(run.terminal),
                response_events::created_at.eq(to_naive(now)),
            ))
            .execute(conn)?;
        notify(conn, EVENTS_CHANNEL, &thread_pk.to_string())
    })
}

/// [`append`]'s statement on PostgreSQL: the row and `pg_notify` in one
/// statement, written out so that the connection keeps it prepared (diesel
/// compiles a `sql_query` on every execution).
struct StoreRun<'a> {
    thread_pk: i64,
    response_id: &'a str,
    run: &'a NewEvents,
    created_at: chrono::NaiveDateTime,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for StoreRun<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{BigInt, Bool, Timestamp};
        out.push_sql(
            "WITH stored AS (INSERT INTO response_events \
             (thread_pk, response_id, first_seq, last_seq, events, terminal, created_at) VALUES (",
        );
        out.push_bind_param::<BigInt, _>(&self.thread_pk)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.response_id)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.run.first_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.run.last_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.run.events)?;
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&self.run.terminal)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.created_at)?;
        out.push_sql(
            ") RETURNING thread_pk) \
             SELECT pg_notify('skein_events', thread_pk::text) FROM stored",
        );
        Ok(())
    }
}

impl diesel::query_builder::QueryId for StoreRun<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Conn> RunQueryDsl<Conn> for StoreRun<'_> {}

/// Asks every replica to cancel the response running in `thread_id` of
/// `organization` (PostgreSQL; nothing to do on SQLite, one process).
pub fn request_cancel(
    conn: &mut DbConnection,
    organization: &str,
    thread_id: &str,
) -> Result<(), StoreError> {
    let payload = serde_json::json!({"o": organization, "t": thread_id}).to_string();
    notify(conn, CANCEL_CHANNEL, &payload)
}

fn notify(conn: &mut DbConnection, channel: &str, payload: &str) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(channel)
            .bind::<Text, _>(payload)
            .execute(c)?;
    }
    Ok(())
}

/// Deletes up to `batch` runs stored before `cutoff` (the response TTL);
/// returns how many.
pub fn purge_older_than(
    conn: &mut DbConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<usize, StoreError> {
    crate::connection::write_transaction(conn, |conn| {
        let due: Vec<i64> = response_events::table
            .filter(response_events::created_at.lt(to_naive(cutoff)))
            .select(response_events::pk)
            .limit(batch)
            .load(conn)?;
        Ok(
            diesel::delete(response_events::table.filter(response_events::pk.eq_any(due)))
                .execute(conn)?,
        )
    })
}

/// Deletes every stored event of these threads (when they are purged).
pub(crate) fn purge_threads(conn: &mut DbConnection, thread_pks: &[i64]) -> Result<(), StoreError> {
    if !thread_pks.is_empty() {
        diesel::delete(
            response_events::table.filter(response_events::thread_pk.eq_any(thread_pks)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// A request to cancel the response running in a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelSignal {
    /// The thread's organization.
    pub organization: String,
    /// The thread id.
    pub thread_id: String,
}

/// In-process wake-ups: "events were stored for thread pk N" (a counter per
/// thread that readers watch) and cancel requests.
#[derive(Debug)]
pub struct Signals {
    events: Mutex<HashMap<i64, watch::Sender<u64>>>,
    cancels: broadcast::Sender<CancelSignal>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            events: Mutex::new(HashMap::new()),
            cancels: broadcast::Sender::new(64),
        }
    }
}

/// Entries kept before watchers that have gone are dropped.
const PRUNE_AT: usize = 1024;

impl Signals {
    /// Watches the thread's events: the receiver changes whenever events of
    /// the thread are stored (here or, on PostgreSQL, by any replica).
    pub fn watch_events(&self, thread_pk: i64) -> watch::Receiver<u64> {
        let mut map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= PRUNE_AT {
            map.retain(|_, tx| tx.receiver_count() > 0);
        }
        map.entry(thread_pk)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Wakes the watchers of a thread's events.
    pub fn events_stored(&self, thread_pk: i64) {
        let mut map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = map.get(&thread_pk) {
            if tx.receiver_count() == 0 {
                map.remove(&thread_pk);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Wakes every watcher (after the cross-replica listener reconnected
    /// and may have missed notifications).
    pub fn wake_all(&self) {
        let map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for tx in map.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Cancel requests that reach this process.
    pub fn cancels(&self) -> broadcast::Receiver<CancelSignal> {
        self.cancels.subscribe()
    }

    fn cancel_requested(&self, signal: CancelSignal) {
        // No receiver (no response running here) is fine.
        let _ = self.cancels.send(signal);
    }
}

/// Follows PostgreSQL's `skein_events` and `skein_cancel` channels on a
/// connection of its own and turns their notifications into [`Signals`],
/// reconnecting (and waking every reader) when the connection drops. Runs
/// until the process ends.
pub async fn listen(url: String, signals: std::sync::Arc<Signals>) {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match listen_once(&url, &signals).await {
            Ok(()) => log::warn!("the notification connection closed; reconnecting"),
            Err(e) => log::warn!("the notification connection failed: {e}; reconnecting"),
        }
        signals.wake_all();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

async fn listen_once(url: &str, signals: &Signals) -> Result<(), String> {
    let (config, tls) = listener_config(url)?;
    macro_rules! run {
        ($tls:expr) => {{
            let (client, mut connection) = config.connect($tls).await.map_err(|e| e.to_string())?;
            let messages = Box::pin(futures_util::stream::poll_fn(move |cx| {
                connection.poll_message(cx)
            }));
            let listening = async {
                client
                    .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}; LISTEN {CANCEL_CHANNEL}"))
                    .await
                    .map_err(|e| e.to_string())?;
                // Readers may have missed events while no one listened.
                signals.wake_all();
                std::future::pending::<Result<(), String>>().await
            };
            tokio::select! {
                done = forward(messages, signals) => done,
                failed = listening => failed,
            }
        }};
    }
    match tls {
        None => run!(tokio_postgres::NoTls),
        Some(tls) => run!(tls),
    }
}

async fn forward<S>(mut messages: S, signals: &Signals) -> Result<(), String>
where
    S: futures_util::Stream<Item = Result<tokio_postgres::AsyncMessage, tokio_postgres::Error>>
        + Unpin,
{
    use futures_util::StreamExt;
    while let Some(message) = messages.next().await {
        if let tokio_postgres::AsyncMessage::Notification(n) = message.map_err(|e| e.to_string())? {
            dispatch(signals, &n);
        }
    }
    Ok(())
}

fn dispatch(signals: &Signals, n: &tokio_postgres::Notification) {
    match n.channel() {
        EVENTS_CHANNEL => {
            if let Ok(pk) = n.payload().parse::<i64>() {
                signals.events_stored(pk);
            }
        }
        CANCEL_CHANNEL => {
            #[derive(serde::Deserialize)]
            struct Payload {
                o: String,
                t: String,
            }
            if let Ok(p) = serde_json::from_str::<Payload>(n.payload()) {
                signals.cancel_requested(CancelSignal {
                    organization: p.o,
                    thread_id: p.t,
                });
            }
        }
        _ => {}
    }
}

/// The listener's connection settings from the database URL: libpq options
/// tokio-postgres does not know are left out (`sslrootcert` is loaded into
/// the TLS roots), `verify-ca`/`verify-full` become `require` (the
/// certificate is always verified against the system's and `sslrootcert`'s
/// roots). Without `sslmode=require` or stronger the connection is plain.
fn listener_config(
    url: &str,
) -> Result<
    (
        tokio_postgres::Config,
        Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ),
    String,
> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut tls = false;
    let mut root_file = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => match v {
                "require" | "verify-ca" | "verify-full" => {
                    tls = true;
                    kept.push("sslmode=require".to_string());
                }
                _ => kept.push("sslmode=disable".to_string()),
            },
            "sslrootcert" => root_file = Some(v.to_string()),
            "sslcert" | "sslkey" | "sslcrl" | "sslpassword" | "gssencmode" => {}
            _ => kept.push(pair.to_string()),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config: tokio_postgres::Config = rebuilt
        .parse()
        .map_err(|e: tokio_postgres::Error| format!("invalid database URL: {e}"))?;
    if !tls {
        return Ok((config, None));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(file) = root_file {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&file)
            .map_err(|e| format!("cannot read sslrootcert {file}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("cannot read sslrootcert {file}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("invalid certificate in {file}: {e}"))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        config,
        Some(tokio_postgres_rustls::MakeRustlsConnect::new(client)),
    ))
}
