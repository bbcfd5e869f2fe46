//! `Idempotency-Key` on every `POST` and `DELETE` of both dialects
//! (contract 11.4), as one middleware in front of the handlers.
//!
//! A request that carries the header has its key claimed for the caller's
//! user in the database, under a fingerprint of the request (method, path,
//! query, body), in the handler's own first trip to the database, right
//! after authentication ([`Caller::run`]); a free key is written with the
//! trip's first write, in the same transaction ([`Deferred`]): a keyed
//! write costs no trip and no transaction more than the same write without
//! a key. Then:
//!
//! - a new key runs the request and keeps its answer (status, the headers
//!   that matter, the body; a stream's body as it was sent, kept whole even
//!   when the client leaves before its end) for 24 hours;
//! - the same key and the same request again: the handler stops at its
//!   first trip and the kept answer is sent, with `Idempotent-Replayed:
//!   true`, without running anything;
//! - the same key for another request: 422 `IDEMPOTENCY_KEY_REUSED`;
//! - the same key while the first request still runs: 409
//!   `IDEMPOTENCY_IN_PROGRESS` with `Retry-After`.
//!
//! Nothing a handler does before its first trip is visible (it reads and
//! checks the request), so claiming there is the same as claiming before
//! the handler. A handler that answers without any trip (a body refused by
//! its checks) has the key claimed just after, before its answer is sent:
//! that refusal is the key's first answer like any other.
//!
//! A plain answer is sent while its row is written (a task of its own,
//! [`Settling`]): a retry that reaches this process meanwhile waits for that
//! write and is replayed; one that reaches another replica in that instant
//! gets 409 `IDEMPOTENCY_IN_PROGRESS` with `Retry-After: 1`. A stream ends
//! only once its answer is kept.
//!
//! Answers a retry should not see again are not kept (5xx, 409, 429): the
//! key is given back and the next request with it runs.

use crate::auth::{Caller, Identity};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpResponse};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use skein_persistence::idempotency::{self, Claim, Deferred, KeyRequest, StoredAnswer};
use skein_persistence::{DbConnection, StoreError};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The header of a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key.
const MAX_KEY_LEN: usize = 255;
/// How long a running request holds its key before another may take it
/// over (its process died): longer than any turn.
const HOLD: TimeDelta = TimeDelta::minutes(15);
/// Headers kept with an answer and replayed.
const KEPT_HEADERS: [&str; 4] = ["content-type", "etag", "location", "retry-after"];

/// The key of a request, checked: 1-255 visible ASCII characters.
fn key_of(req: &ServiceRequest) -> Option<Result<String, ApiError>> {
    if !matches!(*req.method(), Method::POST | Method::DELETE) {
        return None;
    }
    let raw = req.headers().get(HEADER)?;
    let valid = raw.len() <= MAX_KEY_LEN
        && !raw.is_empty()
        && raw.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
    Some(if valid {
        Ok(String::from_utf8_lossy(raw.as_bytes()).into_owned())
    } else {
        Err(ApiError::InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ))
    })
}

/// Whether an answer with this status is kept for the key.
fn kept(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::CONFLICT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

/// A request's key, claimed in its first trip ([`Caller::run`]).
#[derive(Debug)]
pub(crate) struct KeyClaim {
    key: String,
    fingerprint: String,
    /// The caller's user and what claiming found, once claimed.
    outcome: OnceLock<(String, Claim)>,
}

impl KeyClaim {
    /// Starts the claim of the key for `who` in a trip on `conn`: a key
    /// already claimed by this request lets the handler go on (or stops it,
    /// as below); one that a read settles (a kept answer, another request's
    /// key, a running request) stops it; a free key is claimed with the
    /// trip's first write (the returned [`Deferred`], which
    /// [`KeyClaim::finish`] ends after the handler's step).
    pub(crate) fn start(
        &self,
        conn: &mut DbConnection,
        who: &Identity,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<Deferred>>, ApiError> {
        if let Some((_, claim)) = self.outcome.get() {
            return Self::go_on(claim).map(|()| None);
        }
        let user = who.user_id.to_string();
        let request = KeyRequest {
            user: user.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            now,
            hold: HOLD,
        };
        match Deferred::read(conn, request)? {
            Ok(deferred) => Ok(Some(deferred)),
            Err(found) => Self::go_on(&self.outcome.get_or_init(|| (user, found)).1).map(|()| None),
        }
    }

    /// Ends the trip that [`KeyClaim::start`] began: the claim is final
    /// (made now if the trip wrote nothing); the handler's step counts only
    /// if the key is this request's.
    pub(crate) fn finish(
        &self,
        conn: &mut DbConnection,
        who: &Identity,
        deferred: &Deferred,
    ) -> Result<(), ApiError> {
        let claim = deferred.finish(conn)?;
        let (_, claim) = self
            .outcome
            .get_or_init(|| (who.user_id.to_string(), claim));
        Self::go_on(claim)
    }

    /// Whether the handler goes on with `claim`: only if the key is its
    /// own. A kept answer stops it with [`ApiError::IdempotentReplay`] (the
    /// middleware sends the answer).
    fn go_on(claim: &Claim) -> Result<(), ApiError> {
        match claim {
            Claim::New => Ok(()),
            Claim::Replay(_) => Err(ApiError::IdempotentReplay),
            Claim::Reused => Err(ApiError::IdempotencyKeyReused),
            Claim::InProgress => Err(ApiError::IdempotencyInProgress),
        }
    }
}

/// The middleware (see the module's documentation).
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = match key_of(&req) {
        None => return Ok(next.call(req).await?.map_into_boxed_body()),
        Some(Err(e)) => return Ok(req.error_response(e)),
        Some(Ok(key)) => key,
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // The body, read once here and handed on to the handler unchanged.
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return Ok(req.error_response(ApiError::InvalidJson(e.to_string()))),
        };
        body.extend_from_slice(&chunk);
        if body.len() > state.max_body_bytes {
            return Ok(req.error_response(ApiError::PayloadTooLarge(state.max_body_bytes)));
        }
    }
    let body = body.freeze();
    let fingerprint = {
        let mut h = Sha256::new();
        for part in [req.method().as_str(), req.path(), req.query_string()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(&body);
        hex::encode(h.finalize())
    };
    req.set_payload(Payload::from(body));
    // Without a credential: the handler answers as it does without a key.
    let Ok(caller) = Caller::extract(req.request()).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // A retry sent right after its first answer waits until this process
    // has written that answer down.
    state.settling.wait(&key, &fingerprint).await;
    let key_claim = Arc::new(KeyClaim {
        key,
        fingerprint,
        outcome: OnceLock::new(),
    });
    let caller = caller.claiming(Arc::clone(&key_claim));
    req.extensions_mut().insert(caller.clone());
    let res = next.call(req).await?.map_into_boxed_body();
    if key_claim.outcome.get().is_none() {
        // Answered before any trip (or its authentication failed): the key
        // is claimed now, before that answer goes out.
        match caller.identity().await {
            Ok(_) | Err(ApiError::IdempotentReplay) => {}
            Err(e) => return Ok(ServiceResponse::from_err(e, res.into_parts().0)),
        }
    }
    let Some((user, claim)) = key_claim.outcome.get() else {
        return Ok(res);
    };
    match claim {
        Claim::New => {
            let keeper = Keeper {
                state,
                user: user.clone(),
                claim: Arc::clone(&key_claim),
            };
            keeper.keep(res).await
        }
        Claim::Replay(answer) => Ok(res.into_response(replay(answer.clone()))),
        // The handler's first trip refused it, in its own envelope.
        Claim::Reused | Claim::InProgress => Ok(res),
    }
}

/// The answers this process is writing down for their keys right now (by
/// key and request fingerprint): a plain answer goes out while its row is
/// written, and a retry that reaches this process meanwhile waits for that
/// write instead of finding its key still running.
#[derive(Debug, Default)]
pub struct Settling {
    writing: Mutex<HashMap<String, usize>>,
    written: tokio::sync::Notify,
}

impl Settling {
    /// How long a retry waits for the first request's answer to be kept.
    const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    fn id(key: &str, fingerprint: &str) -> String {
        format!("{fingerprint} {key}")
    }

    fn writing(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.writing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an answer being written until the returned guard drops.
    fn begin(self: &Arc<Self>, key: &str, fingerprint: &str) -> Writing {
        let id = Self::id(key, fingerprint);
        *self.writing().entry(id.clone()).or_default() += 1;
        Writing {
            settling: Arc::clone(self),
            id,
        }
    }

    /// Waits (at most [`Self::WAIT`]) while an answer for `key` and
    /// `fingerprint` is being written here.
    async fn wait(&self, key: &str, fingerprint: &str) {
        if self.writing().is_empty() {
            return;
        }
        let id = Self::id(key, fingerprint);
        let deadline = tokio::time::Instant::now() + Self::WAIT;
        loop {
            // Made before the check, so a write that ends in between
            // still wakes it.
            let written = self.written.notified();
            if !self.writing().contains_key(&id) {
                return;
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                return;
            }
        }
    }
}

/// An answer being written ([`Settling::begin`]).
struct Writing {
    settling: Arc<Settling>,
    id: String,
}

impl Drop for Writing {
    fn drop(&mut self) {
        {
            let mut writing = self.settling.writing();
            if let Some(n) = writing.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    writing.remove(&self.id);
                }
            }
        }
        self.settling.written.notify_waiters();
    }
}

/// The kept answer again.
fn replay(answer: StoredAnswer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            res.insert_header((n, v));
        }
    }
    res.insert_header((REPLAYED, "true"));
    res.body(answer.body)
}

/// Where a claimed key's answer goes.
#[derive(Clone)]
struct Keeper {
    state: web::Data<AppState>,
    user: String,
    /// The request's key and fingerprint.
    claim: Arc<KeyClaim>,
}

impl Keeper {
    /// Keeps `res` for the key (a plain body while it is sent, a stream
    /// before it ends), or gives the key back when `res` is not to be kept.
    async fn keep(
        self,
        res: ServiceResponse<BoxBody>,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        let status = res.status();
        if !kept(status) {
            self.later(Self::release);
            return Ok(res);
        }
        let headers: Vec<(String, String)> = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = res.headers().get(*name)?.to_str().ok()?;
                Some((name.to_string(), value.to_string()))
            })
            .collect();
        let streamed = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let (req, res) = res.into_parts();
        let (head, body) = res.into_parts();
        let answer = StoredAnswer {
            status: status.as_u16(),
            headers,
            body: Vec::new(),
        };
        if streamed {
            let tee = Tee {
                inner: Some(body),
                seen: Vec::new(),
                answer: Some((self, answer)),
                storing: None,
            };
            return Ok(ServiceResponse::new(req, head.set_body(BoxBody::new(tee))));
        }
        let bytes = match actix_web::body::to_bytes(body).await {
            Ok(b) => b,
            Err(_) => {
                self.later(Self::release);
                return Ok(ServiceResponse::new(
                    req,
                    head.set_body(BoxBody::new(Bytes::new())),
                ));
            }
        };
        let kept = StoredAnswer {
            body: bytes.to_vec(),
            ..answer
        };
        self.later(|keeper| keeper.store(kept));
        Ok(ServiceResponse::new(
            req,
            head.set_body(BoxBody::new(bytes)),
        ))
    }

    /// Writes the key's outcome after the answer goes out (off the
    /// client's wait), registered in [`Settling`] until it is written.
    fn later<F, Fut>(self, write: F)
    where
        F: FnOnce(Self) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let writing = self
            .state
            .settling
            .begin(&self.claim.key, &self.claim.fingerprint);
        let done = write(self);
        actix_web::rt::spawn(skein_engine::log_context::inherit(async move {
            done.await;
            drop(writing);
        }));
    }

    async fn store(self, answer: StoredAnswer) {
        // If it fails, the key stays claimed until its hold lapses: a retry
        // meanwhile gets 409, never a second run.
        self.on_key(
            "an idempotent answer could not be kept",
            move |conn, user, key, fp| idempotency::finish(conn, user, key, fp, &answer),
        )
        .await;
    }

    async fn release(self) {
        self.on_key(
            "an idempotency key could not be given back",
            idempotency::release,
        )
        .await;
    }

    /// Runs `write` on the key in a trip of its own; a failure is logged.
    async fn on_key<F>(self, failure: &'static str, write: F)
    where
        F: FnOnce(&mut DbConnection, &str, &str, &str) -> Result<(), StoreError> + Send + 'static,
    {
        let Self { state, user, claim } = self;
        let done = state
            .store
            .run(move |conn| write(conn, &user, &claim.key, &claim.fingerprint))
            .await;
        if let Err(e) = done {
            log::warn!("{failure}: {e}");
        }
    }
}

/// A streamed body passed on as it comes and kept as it was sent. If the
/// client leaves before the end, the rest is still read (the turn goes on
/// without it) and kept, so that a retry replays the whole stream.
struct Tee {
    inner: Option<BoxBody>,
    seen: Vec<u8>,
    answer: Option<(Keeper, StoredAnswer)>,
    /// Keeping the answer: the body ends only once it is kept, so that a
    /// retry sent right after the end is replayed.
    storing: Option<futures_util::future::LocalBoxFuture<'static, ()>>,
}

impl MessageBody for Tee {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        if let Some(storing) = this.storing.as_mut() {
            return match storing.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.storing = None;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            };
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen.extend_from_slice(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A broken stream is not kept: the key is given back.
                this.inner = None;
                if let Some((keeper, _)) = this.answer.take() {
                    actix_web::rt::spawn(skein_engine::log_context::inherit(keeper.release()));
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                match this.answer.take() {
                    Some((keeper, answer)) => {
                        let body = std::mem::take(&mut this.seen);
                        this.storing =
                            Some(Box::pin(keeper.store(StoredAnswer { body, ..answer })));
                        self.poll_next(cx)
                    }
                    None => Poll::Ready(None),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        let (Some(inner), Some((keeper, answer))) = (self.inner.take(), self.answer.take()) else {
            return;
        };
        let mut seen = std::mem::take(&mut self.seen);
        actix_web::rt::spawn(skein_engine::log_context::inherit(async move {
            match actix_web::body::to_bytes(inner).await {
                Ok(rest) => {
                    seen.extend_from_slice(&rest);
                    keeper
                        .store(StoredAnswer {
                            body: seen,
                            ..answer
                        })
                        .await;
                }
                Err(_) => keeper.release().await,
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::time::Duration;

    #[tokio::test]
    async fn a_retry_waits_for_its_answer_being_written_and_no_other() {
        let settling = Arc::new(Settling::default());
        let first = settling.begin("key-1", "fp-1");
        let second = settling.begin("key-1", "fp-1");
        // Another request's key, or the same key under another request,
        // does not wait.
        assert!(settling.wait("key-2", "fp-1").now_or_never().is_some());
        assert!(settling.wait("key-1", "fp-2").now_or_never().is_some());
        // The retry waits while either write of its key runs.
        let mut retry = Box::pin(settling.wait("key-1", "fp-1"));
        assert!((&mut retry).now_or_never().is_none());
        drop(first);
        assert!((&mut retry).now_or_never().is_none());
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), retry)
            .await
            .expect("the retry goes on once the answer is written");
        assert!(settling.writing().is_empty());
    }
}
