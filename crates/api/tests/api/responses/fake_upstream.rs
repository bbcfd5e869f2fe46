//! A fake OpenAI-compatible upstream on a real loopback port. The requested
//! model name picks the behaviour: `fake-ok` streams "fake answer",
//! `fake-500` fails, `hang` never answers, `fake-broken` stops mid-stream,
//! `fake-gated` signals `received` and waits for `gate`, `fake-slow` sends
//! one delta ("partial answer") and then stalls, `fake-flood` sends
//! [`FLOOD`] deltas ("0 ", "1 ", ...) at once and then stalls.

use crate::common::{within, REQUEST_TIMEOUT_SECS};
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

pub struct Upstream {
    pub base_url: String,
    received: mpsc::UnboundedReceiver<Value>,
    gate: Arc<Notify>,
}

impl Upstream {
    /// Starts one on its own thread and actix system. The listener is bound
    /// before this returns, so requests simply queue until it accepts them.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let gate = Arc::new(Notify::new());
        let shared = web::Data::new(Shared {
            received: tx,
            gate: gate.clone(),
        });
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route("/v1/chat/completions", web::post().to(completions))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run()
                .await
            })
        });
        Self {
            base_url,
            received: rx,
            gate,
        }
    }

    /// The routes of [`super::routing`] to this upstream, echo with an 8192
    /// token window for the other models.
    pub fn router(&self) -> skein_providers::Router {
        super::routing(&self.base_url, 8192)
    }

    /// The body of the next request the upstream receives, within the bound.
    #[track_caller]
    pub fn next_request(&mut self) -> impl Future<Output = Value> + '_ {
        let next = within(REQUEST_TIMEOUT_SECS, self.received.recv());
        async move { next.await.expect("the upstream runs as long as the test") }
    }

    /// True when no request has arrived since the last one taken.
    pub fn nothing_received(&mut self) -> bool {
        self.received.try_recv().is_err()
    }

    /// Lets one waiting `fake-gated` request answer.
    pub fn open_gate(&self) {
        self.gate.notify_one();
    }
}

/// How many deltas `fake-flood` sends.
pub const FLOOD: usize = 2_000;

/// The text `fake-flood` streams before it stalls.
pub fn flood_text() -> String {
    (0..FLOOD).map(|i| format!("{i} ")).collect()
}

struct Shared {
    received: mpsc::UnboundedSender<Value>,
    gate: Arc<Notify>,
}

fn chunk(text: &str) -> web::Bytes {
    web::Bytes::from(format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": text}}]})
    ))
}

fn sse<S>(s: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(s)
}

async fn completions(body: web::Json<Value>, shared: web::Data<Shared>) -> HttpResponse {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let _ = shared.received.send(body.0.clone());
    if model == "fake-gated" {
        // Bounded, so that a test that never opens the gate cannot leave a
        // request of the server under test waiting for ever.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(REQUEST_TIMEOUT_SECS),
            shared.gate.notified(),
        )
        .await;
    }
    if body["stream"] != json!(true) && model == "fake-ok" {
        return HttpResponse::Ok().json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "\"Password Reset Help\""}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        }));
    }
    match model.as_str() {
        "fake-500" => HttpResponse::InternalServerError().body("model exploded"),
        "hang" => futures_util::future::pending().await,
        "fake-broken" => sse(async_stream::stream! {
            yield Ok::<_, actix_web::Error>(chunk("half "));
        }),
        "fake-flood" => sse(async_stream::stream! {
            for i in 0..FLOOD {
                yield Ok::<_, actix_web::Error>(chunk(&format!("{i} ")));
            }
            futures_util::future::pending::<()>().await;
        }),
        "fake-slow" => sse(async_stream::stream! {
            yield Ok::<_, actix_web::Error>(chunk("partial answer"));
            futures_util::future::pending::<()>().await;
        }),
        _ => sse(async_stream::stream! {
            yield Ok::<_, actix_web::Error>(chunk("fake "));
            yield Ok(chunk("answer"));
            yield Ok(web::Bytes::from("data: [DONE]\n\n"));
        }),
    }
}
