//! The typed test client. A [`TestApp`] owns a fresh database, its store,
//! the seeded [`Keys`] and the initialized service built by
//! `skein_api::build_app`, and has one method per endpoint; [`TestApp::request`]
//! builds the odd request (raw bodies, headers, bearer tokens). Every request
//! and every read of a stream is bounded (see [`within`]): a regression fails
//! in seconds instead of hanging.

#![allow(dead_code)]

use super::common::{bounded, raw_send, seed, within, Keys, Resp, REQUEST_TIMEOUT_SECS};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header::HeaderMap, Method};
use actix_web::{test, web};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use skein_api::AppState;
use skein_persistence::testing::TestDb;
use skein_persistence::{Backend, Store};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

type Request = actix_http::Request;
type ResponseFuture = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>;

/// The initialized app with its type erased: a cheap handle that every
/// helper taking a `Service` accepts (`send`, `raw_send`, `test::call_service`).
#[derive(Clone)]
pub struct Svc(Rc<dyn Fn(Request) -> ResponseFuture>);

impl Svc {
    fn new<S, B>(service: S) -> Self
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
        B: MessageBody + 'static,
    {
        let service = Rc::new(service);
        Self(Rc::new(move |req| {
            let call = service.call(req);
            Box::pin(async move { call.await.map(ServiceResponse::map_into_boxed_body) })
        }))
    }
}

impl Service<Request> for Svc {
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = ResponseFuture;

    fn poll_ready(&self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&self, req: Request) -> Self::Future {
        (self.0)(req)
    }
}

/// A fresh database with seeded keys and the real app on it.
pub struct TestApp {
    service: Svc,
    /// The store the app uses, for setting up and checking rows directly.
    pub store: Store,
    /// The seeded API keys.
    pub keys: Keys,
    /// The database (dropped last).
    pub db: TestDb,
}

impl TestApp {
    /// The app with the default state on a fresh database.
    pub async fn spawn(backend: Backend) -> Self {
        Self::with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with `adjust` applied to the state (router,
    /// limits, clock...) before the app is built.
    pub async fn with(backend: Backend, adjust: impl FnOnce(&mut AppState)) -> Self {
        let db = TestDb::new(backend);
        let store = db.store();
        let keys = seed(&store);
        let mut state = AppState::new(store.clone());
        adjust(&mut state);
        let app = skein_api::build_app(state, web::Data::new(skein_api::Metrics::default()));
        let service = Svc::new(within(REQUEST_TIMEOUT_SECS, test::init_service(app)).await);
        Self {
            service,
            store,
            keys,
            db,
        }
    }

    /// The parts, as the `setup!` macros hand them out.
    pub fn into_parts(self) -> (TestDb, Store, Svc, Keys) {
        (self.db, self.store, self.service, self.keys)
    }

    /// A request to build further; see [`RequestBuilder`].
    pub fn request(&self, method: Method, uri: impl AsRef<str>) -> RequestBuilder<'_> {
        RequestBuilder {
            service: &self.service,
            req: test::TestRequest::default()
                .method(method)
                .uri(uri.as_ref()),
        }
    }

    /// `GET uri`, to build further.
    pub fn get(&self, uri: impl AsRef<str>) -> RequestBuilder<'_> {
        self.request(Method::GET, uri)
    }

    /// `POST uri`, to build further.
    pub fn post(&self, uri: impl AsRef<str>) -> RequestBuilder<'_> {
        self.request(Method::POST, uri)
    }

    async fn call(&self, method: Method, key: &str, uri: &str, body: Option<Value>) -> Resp {
        self.request(method, uri).key(key).json(body).send().await
    }

    // Threads.

    /// `POST /v1/threads`.
    pub async fn post_thread(&self, key: &str, body: Value) -> Resp {
        self.call(Method::POST, key, "/v1/threads", Some(body))
            .await
    }

    /// `POST /v1/threads`, which must answer 201; the thread.
    pub async fn create_thread(&self, key: &str, body: Value) -> Value {
        created(self.post_thread(key, body).await)
    }

    /// A new empty thread (`POST /v1/threads` with `{}`); its id.
    pub async fn new_thread(&self, key: &str) -> String {
        self.create_thread(key, serde_json::json!({})).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `GET /v1/threads/{id}`.
    pub async fn get_thread(&self, key: &str, id: &str) -> Resp {
        self.call(Method::GET, key, &format!("/v1/threads/{id}"), None)
            .await
    }

    /// `GET /v1/threads?{query}` (`query` without the `?`, may be empty).
    pub async fn list_threads(&self, key: &str, query: &str) -> Resp {
        self.call(Method::GET, key, &with_query("/v1/threads", query), None)
            .await
    }

    /// `PATCH /v1/threads/{id}`.
    pub async fn patch_thread(&self, key: &str, id: &str, body: Value) -> Resp {
        self.call(Method::PATCH, key, &format!("/v1/threads/{id}"), Some(body))
            .await
    }

    /// `DELETE /v1/threads/{id}`.
    pub async fn delete_thread(&self, key: &str, id: &str) -> Resp {
        self.call(Method::DELETE, key, &format!("/v1/threads/{id}"), None)
            .await
    }

    /// `DELETE /v1/threads?{query}`: all of the caller's threads.
    pub async fn delete_threads(&self, key: &str, query: &str) -> Resp {
        self.call(Method::DELETE, key, &with_query("/v1/threads", query), None)
            .await
    }

    /// `POST /v1/threads/{id}/pin`.
    pub async fn pin(&self, key: &str, id: &str) -> Resp {
        self.call(Method::POST, key, &format!("/v1/threads/{id}/pin"), None)
            .await
    }

    /// `POST /v1/threads/{id}/unpin`.
    pub async fn unpin(&self, key: &str, id: &str) -> Resp {
        self.call(Method::POST, key, &format!("/v1/threads/{id}/unpin"), None)
            .await
    }

    /// `POST /v1/threads/{id}/generateName`.
    pub async fn generate_name(&self, key: &str, id: &str, body: Option<Value>) -> Resp {
        let uri = format!("/v1/threads/{id}/generateName");
        self.call(Method::POST, key, &uri, body).await
    }

    // Messages.

    /// `GET /v1/threads/{thread}/user-state`.
    pub async fn user_state(&self, key: &str, thread: &str) -> Resp {
        let uri = format!("/v1/threads/{thread}/user-state");
        self.call(Method::GET, key, &uri, None).await
    }

    /// `PATCH /v1/threads/{thread}/user-state`.
    pub async fn patch_user_state(&self, key: &str, thread: &str, body: Value) -> Resp {
        let uri = format!("/v1/threads/{thread}/user-state");
        self.call(Method::PATCH, key, &uri, Some(body)).await
    }

    /// `POST /v1/threads/{thread}/messages`.
    pub async fn post_message(&self, key: &str, thread: &str, body: Value) -> Resp {
        let uri = format!("/v1/threads/{thread}/messages");
        self.call(Method::POST, key, &uri, Some(body)).await
    }

    /// `GET /v1/threads/{thread}/messages?{query}`.
    pub async fn list_messages(&self, key: &str, thread: &str, query: &str) -> Resp {
        let uri = with_query(&format!("/v1/threads/{thread}/messages"), query);
        self.call(Method::GET, key, &uri, None).await
    }

    /// `PATCH /v1/threads/{thread}/messages/{id}`.
    pub async fn patch_message(&self, key: &str, thread: &str, id: &str, body: Value) -> Resp {
        let uri = format!("/v1/threads/{thread}/messages/{id}");
        self.call(Method::PATCH, key, &uri, Some(body)).await
    }

    /// `DELETE /v1/threads/{thread}/messages/{id}`.
    pub async fn delete_message(&self, key: &str, thread: &str, id: &str) -> Resp {
        let uri = format!("/v1/threads/{thread}/messages/{id}");
        self.call(Method::DELETE, key, &uri, None).await
    }

    // Model responses.

    /// `POST /v1/model/response`.
    pub async fn post_response(&self, key: &str, body: Value) -> Resp {
        self.call(Method::POST, key, "/v1/model/response", Some(body))
            .await
    }

    /// `POST /v1/model/response` answered as a stream, read as it comes.
    pub async fn stream_response(&self, key: &str, body: Value) -> EventStream {
        self.post("/v1/model/response")
            .key(key)
            .json(body)
            .stream()
            .await
    }

    /// `GET /v1/model/response/{thread}/stream` with `query`, read as it comes.
    pub async fn reconnect(&self, key: &str, thread: &str, query: &str) -> EventStream {
        self.get(format!("/v1/model/response/{thread}/stream?{query}"))
            .key(key)
            .stream()
            .await
    }

    /// `POST /v1/model/response/{thread}/cancel`.
    pub async fn cancel(&self, key: &str, thread: &str) -> Resp {
        let uri = format!("/v1/model/response/{thread}/cancel");
        self.call(Method::POST, key, &uri, None).await
    }

    // Assistants.

    /// `POST /v1/assistants`.
    pub async fn post_assistant(&self, key: &str, body: Value) -> Resp {
        self.call(Method::POST, key, "/v1/assistants", Some(body))
            .await
    }

    /// `POST /v1/assistants`, which must answer 201; the assistant.
    pub async fn create_assistant(&self, key: &str, body: Value) -> Value {
        created(self.post_assistant(key, body).await)
    }

    /// `GET /v1/assistants/{id}`.
    pub async fn get_assistant(&self, key: &str, id: &str) -> Resp {
        self.call(Method::GET, key, &format!("/v1/assistants/{id}"), None)
            .await
    }

    /// `GET /v1/assistants?{query}`.
    pub async fn list_assistants(&self, key: &str, query: &str) -> Resp {
        self.call(Method::GET, key, &with_query("/v1/assistants", query), None)
            .await
    }

    /// `PUT /v1/assistants/{id}`.
    pub async fn put_assistant(&self, key: &str, id: &str, body: Value) -> Resp {
        let uri = format!("/v1/assistants/{id}");
        self.call(Method::PUT, key, &uri, Some(body)).await
    }

    /// `DELETE /v1/assistants/{id}`.
    pub async fn delete_assistant(&self, key: &str, id: &str) -> Resp {
        let uri = format!("/v1/assistants/{id}");
        self.call(Method::DELETE, key, &uri, None).await
    }
}

/// The app is a service too: the free helpers (`send`, `raw_send`, ...) accept it.
impl Service<Request> for TestApp {
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = ResponseFuture;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&self, req: Request) -> Self::Future {
        self.service.call(req)
    }
}

/// The body of a 201 answer.
#[track_caller]
fn created(r: Resp) -> Value {
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

fn with_query(path: &str, query: &str) -> String {
    match query {
        "" => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

/// A request under construction: `app.request(Method::PATCH, uri).key(k).json(body).send().await`.
#[must_use]
pub struct RequestBuilder<'a> {
    service: &'a Svc,
    req: test::TestRequest,
}

impl RequestBuilder<'_> {
    /// Authenticates with `X-API-Key`.
    pub fn key(self, key: &str) -> Self {
        self.header("X-API-Key", key)
    }

    /// Authenticates with `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.req = self.req.insert_header((name, value));
        self
    }

    /// A JSON body (`None`: no body).
    pub fn json(mut self, body: impl Into<Option<Value>>) -> Self {
        if let Some(body) = body.into() {
            self.req = self.req.set_json(body);
        }
        self
    }

    /// A raw body, sent as it is (malformed JSON, for instance).
    pub fn payload(mut self, raw: &'static str) -> Self {
        self.req = self.req.set_payload(raw);
        self
    }

    /// Sends it and reads the whole answer, within the default bound.
    pub async fn send(self) -> Resp {
        raw_send(self.service, self.req).await
    }

    /// Sends it and returns the answer's head, its body to be read as it comes.
    pub async fn stream(self) -> EventStream {
        let req = self.req.to_request();
        let what = format!("{} {}", req.method(), req.uri());
        let res = bounded(&what, REQUEST_TIMEOUT_SECS, self.service.call(req))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        EventStream {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: Box::pin(res.into_body()),
            raw: Vec::new(),
            parsed: 0,
        }
    }
}

/// A response body read as it arrives: server-sent events, usually.
pub struct EventStream {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    body: Pin<Box<BoxBody>>,
    /// Every byte read so far.
    pub raw: Vec<u8>,
    /// How much of `raw` [`EventStream::until_event`] has looked at.
    parsed: usize,
}

impl EventStream {
    /// The next chunk of the body (`None` at its end), within the default bound.
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let body = &mut self.body;
        let chunk = bounded(
            "the next chunk of a streamed answer",
            REQUEST_TIMEOUT_SECS,
            std::future::poll_fn(|cx| body.as_mut().poll_next(cx)),
        )
        .await?;
        let chunk = chunk.unwrap_or_else(|e| panic!("stream error: {e}"));
        self.raw.extend_from_slice(&chunk);
        Some(chunk.to_vec())
    }

    /// Reads until a frame named `event` arrives; its data. Frames before it
    /// are skipped (they stay in `raw`).
    pub async fn until_event(&mut self, event: &str) -> Value {
        loop {
            while let Some(end) = find(&self.raw[self.parsed..], b"\n\n") {
                let block = String::from_utf8_lossy(&self.raw[self.parsed..self.parsed + end]);
                self.parsed += end + 2;
                if let Some((name, data)) = frame(&block) {
                    if name == event {
                        return data;
                    }
                }
            }
            if self.next_chunk().await.is_none() {
                panic!(
                    "the stream ended without {event}:\n{}",
                    String::from_utf8_lossy(&self.raw)
                );
            }
        }
    }

    /// Reads to the end; every frame of the stream, from its first.
    pub async fn finish(mut self) -> Vec<(String, Value)> {
        while self.next_chunk().await.is_some() {}
        sse_events(&self.raw)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One frame's event name and data (`("[DONE]", Null)` for the end marker);
/// `None` for a block without data. The `event:` line must agree with the
/// data's `event` key.
fn frame(block: &str) -> Option<(String, Value)> {
    let mut name = None;
    let mut data = None;
    let mut id = None;
    for line in block.lines() {
        if let Some(i) = line.strip_prefix("id: ") {
            id = Some(i.parse::<u64>().expect("an id line holds a number"));
        } else if let Some(n) = line.strip_prefix("event: ") {
            name = Some(n.to_string());
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = Some(d.to_string());
        }
    }
    let data = data?;
    if data == "[DONE]" {
        return Some(("[DONE]".into(), Value::Null));
    }
    let v: Value = serde_json::from_str(&data).unwrap();
    // Skein's frames name their event in `event` and carry an `id:` line;
    // OpenAI's dialect names it in `type` and has no `id:` line.
    let openai = v.get("event").is_none();
    let key = if openai { &v["type"] } else { &v["event"] };
    assert_eq!(key.as_str(), name.as_deref(), "event line and key agree");
    if openai {
        return Some((name.unwrap_or_default(), v));
    }
    assert_eq!(
        id,
        v["sequence_number"].as_u64(),
        "every frame's id line is its sequence number"
    );
    Some((name.unwrap(), v))
}

/// The frames of a whole event stream; every frame has data.
pub fn sse_events(raw: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8_lossy(raw);
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| frame(b).expect("every frame has data"))
        .collect()
}
