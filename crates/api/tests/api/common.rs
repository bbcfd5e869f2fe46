//! Helpers shared by the API test modules: seeded keys, requests through
//! the real app builder, the error-envelope assertion, and the bound on
//! every wait. The typed client ([`TestApp`]) lives in `client.rs`; the free
//! functions and the `setup!` macros here are thin wrappers kept for tests
//! written against them.
#![allow(dead_code)]

// All of the client, for the test modules that `use super::common::*`.
#[allow(unused_imports)]
pub use super::client::{sse_events, EventStream, RequestBuilder, Svc, TestApp};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header::HeaderMap, Method};
use actix_web::test;
use serde_json::{json, Value};
use skein_domain::{clock, OrganizationId, UserId};
use skein_persistence::rows::AssistantRow;
use skein_persistence::{keys, tenancy};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// The bound on every request, stream read and wait of the API tests, in
/// seconds: far above what a healthy run needs, far below a hung CI job.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;

/// `fut`, which must finish within `secs` seconds; otherwise the test panics
/// naming the line that waited.
#[track_caller]
pub fn within<F: Future>(secs: u64, fut: F) -> impl Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    bounded(caller, secs, fut)
}

/// Like [`within`], naming `what` in the panic.
pub async fn bounded<F: Future>(what: impl Display, secs: u64, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: still waiting after {secs} s (a hang, or a lost wake-up)"),
    }
}

pub struct Keys {
    /// usr_1 in org_a.
    pub a1: String,
    /// usr_2 in org_a.
    pub a2: String,
    /// usr_1 in org_b.
    pub b1: String,
}

pub const ORG_A: &str = "org_a";
pub const ORG_B: &str = "org_b";

pub fn seed(store: &skein_persistence::Store) -> Keys {
    let mut conn = store.conn().unwrap();
    let now = clock::now();
    let mut key = |org: &str, user: &str| {
        let org = OrganizationId::parse(org).unwrap();
        let user = UserId::parse(user).unwrap();
        tenancy::ensure_organization(&mut conn, &org, "Org", now).unwrap();
        tenancy::ensure_user(&mut conn, &user, "User", now).unwrap();
        tenancy::ensure_membership(&mut conn, &org, &user, now).unwrap();
        keys::create(&mut conn, &org, &user, None, now)
            .unwrap()
            .secret
    };
    Keys {
        a1: key(ORG_A, "usr_1"),
        a2: key(ORG_A, "usr_2"),
        b1: key(ORG_B, "usr_1"),
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn send<S, B>(
    app: &S,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(uri);
    if let Some(k) = key {
        req = req.insert_header(("X-API-Key", k));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    raw_send(app, req).await
}

pub async fn raw_send<S, B>(app: &S, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = req.to_request();
    let what = format!("{} {}", req.method(), req.uri());
    let (status, headers, raw) = bounded(&what, REQUEST_TIMEOUT_SECS, async {
        let res = test::call_service(app, req).await;
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, test::read_body(res).await.to_vec())
    })
    .await;
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    };
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

/// `(db, store, app, keys)` for a fresh [`TestApp`] whose state `$adjust`
/// changed (router, limits...): `app` is the service, for [`send`] and the
/// other free helpers.
macro_rules! setup_with {
    ($backend:expr, $adjust:expr) => {{
        let adjust: &dyn Fn(&mut skein_api::AppState) = &$adjust;
        $crate::common::TestApp::with($backend, adjust)
            .await
            .into_parts()
    }};
}

/// `(db, store, app, keys)` for a fresh [`TestApp`], optionally with other
/// limits and body size.
macro_rules! setup {
    ($backend:expr) => {
        setup_with!($backend, |_: &mut skein_api::AppState| {})
    };
    ($backend:expr, $limits:expr, $max_body:expr) => {{
        let limits: skein_domain::Limits = $limits;
        let max_body: usize = $max_body;
        setup_with!($backend, move |s: &mut skein_api::AppState| {
            s.limits = limits;
            s.max_body_bytes = max_body;
        })
    }};
}

pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.code(), code, "body: {}", r.body);
    assert_eq!(r.body["success"], json!(false));
    assert_eq!(r.body["error"]["status"], json!(status));
    let trace = r.body["error"]["trace_id"].as_str().unwrap();
    assert_eq!(
        r.headers.get("x-request-id").unwrap().to_str().unwrap(),
        trace
    );
    for field in ["message", "system_message", "type", "timestamp"] {
        assert!(r.body["error"][field].is_string(), "{field} in {}", r.body);
    }
    assert!(r.body["error"]["details"].is_object());
    if status == 422 {
        let detail = r.body["detail"].as_array().expect("422 has a detail list");
        assert!(!detail.is_empty());
        for d in detail {
            assert!(d["loc"].is_array() && d["msg"].is_string() && d["type"].is_string());
        }
    }
}

pub async fn create_thread<S, B>(app: &S, key: &str, body: Value) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = send(app, Method::POST, "/v1/threads", Some(key), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

pub fn meta_with_keys(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
}

pub fn insert_assistant(store: &skein_persistence::Store, id: &str, org: &str) {
    let mut conn = store.conn().unwrap();
    let now = chrono::Utc::now().naive_utc();
    tenancy::insert_assistant(
        &mut conn,
        &AssistantRow {
            id: id.into(),
            organization_id: org.into(),
            created_by: "usr_1".into(),
            name: id.into(),
            instructions: None,
            model: None,
            temperature: None,
            metadata: "{}".into(),
            created_at: now,
            updated_at: now,
        },
    )
    .unwrap();
}

/// Like [`send`], authenticated with `Authorization: Bearer <token>`.
pub async fn send_bearer<S, B>(
    app: &S,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(b) = body {
        req = req.set_json(b);
    }
    raw_send(app, req).await
}

/// The HS256 secret of the test token configuration.
pub const JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// Accepts HS256 tokens signed with [`JWT_SECRET`] (no issuer or audience).
pub fn enable_tokens(state: &mut skein_api::AppState) {
    state.tokens =
        skein_api::tokens::TokenVerifier::from_settings(&skein_api::tokens::JwtSettings {
            secret: Some(JWT_SECRET.into()),
            ..Default::default()
        })
        .unwrap()
        .map(std::sync::Arc::new);
}

/// A token for `user` signed with [`JWT_SECRET`], expiring in `expires_in` seconds.
pub fn token_for(user: &str, expires_in: i64) -> String {
    let claims = json!({"sub": user, "exp": chrono::Utc::now().timestamp() + expires_in});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Never run: keeps the `setup!` macros and the free helpers compiling
/// against the typed client for the tests written with them.
async fn _the_free_helpers_still_fit(backend: skein_persistence::Backend) {
    let (_db, _store, app, k) = setup!(backend);
    create_thread(&app, &k.a1, json!({})).await;
    send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    let (_db, _store, app, _k) = setup!(backend, skein_domain::Limits::default(), 1024);
    raw_send(&app, test::TestRequest::get().uri("/healthz")).await;
    let (_db, _store, app, _k) = setup_with!(backend, enable_tokens);
    send_bearer(
        &app,
        Method::GET,
        "/v1/threads",
        &token_for("usr_1", 60),
        None,
    )
    .await;
}

/// Every log record of this test binary (installed on first use), so that a
/// test can count what one request logged: each record is kept as
/// `LEVEL message`.
pub fn captured_logs() -> &'static std::sync::Mutex<Vec<String>> {
    struct Capture;
    static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                let line = format!("{} {}", r.level(), r.args());
                LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        }
        fn flush(&self) {}
    }
    INSTALLED.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in the API tests");
        log::set_max_level(log::LevelFilter::Warn);
    });
    &LINES
}

/// The captured log lines that mention `needle`.
pub fn logged(needle: &str) -> Vec<String> {
    captured_logs()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// Whether `path` is on the OpenAI dialect (its errors use OpenAI's envelope).
pub fn is_openai(path: &str) -> bool {
    skein_api::openai::PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// [`assert_error`] for a route of either dialect: on OpenAI's paths the
/// answer is OpenAI's envelope, with the status and code OpenAI's server
/// would give for Skein's `status` and `code`.
pub fn assert_error_on(path: &str, r: &Resp, status: u16, code: &str) {
    if !is_openai(path) {
        return assert_error(r, status, code);
    }
    let (want_status, want) = skein_api::openai::errors::translate(
        actix_web::http::StatusCode::from_u16(status).unwrap(),
        &json!({"error": {"code": code, "message": "x"}}),
    );
    assert_eq!(r.status, want_status.as_u16(), "{path}: {}", r.body);
    assert_eq!(
        r.body["error"]["code"], want["error"]["code"],
        "{path}: {}",
        r.body
    );
    for field in ["message", "type"] {
        assert!(r.body["error"][field].is_string(), "{field} in {}", r.body);
    }
    assert!(r.body["error"].get("param").is_some(), "{}", r.body);
    assert!(r.headers.get("x-request-id").is_some());
}

/// The location of a validation error in either envelope: Skein's
/// `detail[0].loc`, or on OpenAI's paths the `param` it becomes.
pub fn error_location(path: &str, r: &Resp, loc: &Value) -> (Value, Value) {
    if is_openai(path) {
        let want = skein_api::openai::errors::param_of(loc).map_or(Value::Null, Value::String);
        (r.body["error"]["param"].clone(), want)
    } else {
        (r.body["detail"][0]["loc"].clone(), loc.clone())
    }
}
