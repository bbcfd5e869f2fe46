//! Behaviour of the providers and the router as the server sees it, including the OpenAI
//! provider against a real fake OpenAI-compatible HTTP server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::stream::{self, LocalBoxStream};
use futures_util::StreamExt;
use serde_json::{json, Value};
use skein_providers::{
    tokens, ChatMessage, ConfigError, EchoProvider, ModelOutput, ModelRequest, ModelRoute,
    OpenAiProvider, OpenAiSettings, Provider, ProviderConfig, ProviderError, ProviderStream, Role,
    Router, RoutingConfig, StreamEvent, Usage,
};

// ---------------------------------------------------------------------------------------------
// helpers

/// Upper bound for any test step, so that a broken implementation fails instead of hanging.
const GUARD: Duration = Duration::from_secs(20);

async fn guarded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .expect("test step did not finish in time")
}

fn request(messages: Vec<ChatMessage>) -> ModelRequest {
    ModelRequest {
        model: "test-model".to_owned(),
        messages,
        temperature: None,
        top_p: None,
        max_output_tokens: None,
    }
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(Role::System, "You are terse."),
        ChatMessage::new(Role::Developer, "Answer in English."),
        ChatMessage::new(Role::User, "first question"),
        ChatMessage::new(Role::Assistant, "first answer"),
        ChatMessage::new(Role::User, "what is the capital of France?"),
    ]
}

async fn collect(stream: ProviderStream) -> Vec<Result<StreamEvent, ProviderError>> {
    guarded(stream.collect::<Vec<_>>()).await
}

fn deltas(events: &[Result<StreamEvent, ProviderError>]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            Ok(StreamEvent::Delta(delta)) => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

fn settings(base_url: &str) -> OpenAiSettings {
    OpenAiSettings {
        base_url: base_url.to_owned(),
        api_key_env: None,
        connect_timeout_secs: 5.0,
        timeout_secs: 10.0,
    }
}

fn provider(fake: &Fake) -> OpenAiProvider {
    OpenAiProvider::new(settings(&fake.base_url)).unwrap()
}

fn quick_provider(fake: &Fake) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiSettings {
        timeout_secs: 0.3,
        ..settings(&fake.base_url)
    })
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// a fake OpenAI-compatible upstream

/// How the fake ends a streamed body after its chunks.
#[derive(Clone, Copy)]
enum End {
    /// Finishes the body normally.
    Close,
    /// Keeps the connection open and sends nothing more.
    Stall,
    /// Breaks the connection once the test calls [`Fake::abort`] (so that the chunks before it
    /// have certainly been sent).
    Abort,
}

#[derive(Clone)]
enum Behaviour {
    Json { status: u16, body: String },
    Sse { chunks: Vec<String>, end: End },
    Hang,
}

#[derive(Debug, Clone)]
struct Received {
    authorization: Option<String>,
    body: Value,
}

struct State {
    behaviour: Behaviour,
    received: Arc<Mutex<Vec<Received>>>,
    abort: Mutex<Option<oneshot::Receiver<()>>>,
}

struct Fake {
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    abort: Option<oneshot::Sender<()>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Breaks the connection of a streamed answer ending with [`End::Abort`].
    fn abort(&mut self) {
        self.abort.take().unwrap().send(()).unwrap();
    }
}

async fn chat_completions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let authorization = req
        .headers()
        .get("authorization")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = serde_json::from_slice(&body).unwrap();
    state.received.lock().unwrap().push(Received {
        authorization,
        body,
    });
    match &state.behaviour {
        Behaviour::Json { status, body } => {
            HttpResponse::build(StatusCode::from_u16(*status).unwrap())
                .content_type("application/json")
                .body(body.clone())
        }
        Behaviour::Hang => futures_util::future::pending().await,
        Behaviour::Sse { chunks, end } => {
            let chunks: Vec<Result<web::Bytes, actix_web::Error>> = chunks
                .iter()
                .map(|chunk| Ok(web::Bytes::from(chunk.clone())))
                .collect();
            let tail: LocalBoxStream<'static, Result<web::Bytes, actix_web::Error>> = match end {
                End::Close => stream::empty().boxed_local(),
                End::Stall => stream::pending().boxed_local(),
                End::Abort => {
                    let abort = state.abort.lock().unwrap().take().unwrap();
                    stream::once(async move {
                        // Bounded too: a test that never aborts ends the stream after GUARD.
                        let _ = tokio::time::timeout(GUARD, abort).await;
                        Err(actix_web::error::ErrorInternalServerError("broken"))
                    })
                    .boxed_local()
                }
                .boxed_local(),
            };
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(stream::iter(chunks).chain(tail))
        }
    }
}

/// Starts a fake upstream on its own thread and actix system. The listener is bound before this
/// returns, so requests simply queue until the server accepts them.
fn start(behaviour: Behaviour) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let (abort, abort_receiver) = oneshot::channel();
    let state = web::Data::new(State {
        behaviour,
        received: Arc::clone(&received),
        abort: Mutex::new(Some(abort_receiver)),
    });
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .route("/v1/chat/completions", web::post().to(chat_completions))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
            .await
        })
    });
    Fake {
        base_url,
        received,
        abort: Some(abort),
    }
}

fn json_answer(status: u16, body: Value) -> Behaviour {
    Behaviour::Json {
        status,
        body: body.to_string(),
    }
}

fn sse(chunks: &[&str], end: End) -> Behaviour {
    Behaviour::Sse {
        chunks: chunks.iter().map(|chunk| (*chunk).to_owned()).collect(),
        end,
    }
}

fn delta_event(content: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    )
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/v1")
}

fn upstream_message(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
    match result {
        Err(ProviderError::Upstream(message)) => message,
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// tokens

#[test]
fn token_counts_follow_the_o200k_encoding() {
    assert_eq!(tokens::count("hello world"), 2);
    assert_eq!(tokens::count(""), 0);
    assert!(tokens::count("The quick brown fox jumps over the lazy dog.") > 5);
}

// ---------------------------------------------------------------------------------------------
// echo

#[tokio::test]
async fn echo_states_how_many_messages_it_saw_and_the_last_user_text() {
    let output = guarded(EchoProvider.complete(request(conversation())))
        .await
        .unwrap();
    assert_eq!(
        output.text,
        "Echo (5 context messages): what is the capital of France?"
    );
    let input_tokens: u32 = conversation()
        .iter()
        .map(|m| tokens::count(&m.content))
        .sum();
    let output_tokens = tokens::count(&output.text);
    assert_eq!(
        output.usage,
        Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens
        }
    );
    assert!(input_tokens > 0 && output_tokens > 0);
}

#[tokio::test]
async fn echo_without_a_user_message_echoes_nothing() {
    let output =
        guarded(EchoProvider.complete(request(vec![ChatMessage::new(Role::System, "be nice")])))
            .await
            .unwrap();
    assert_eq!(output.text, "Echo (1 context messages): ");
}

#[tokio::test]
async fn echo_streams_word_chunks_that_add_up_to_the_answer_then_completes() {
    let expected = guarded(EchoProvider.complete(request(conversation())))
        .await
        .unwrap();
    let events = collect(EchoProvider.stream(request(conversation()))).await;
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last, &Ok(StreamEvent::Completed(expected.clone())));
    assert!(chunks.len() > 3, "answer should come in several chunks");
    assert!(chunks
        .iter()
        .all(|event| matches!(event, Ok(StreamEvent::Delta(_)))));
    assert_eq!(deltas(&events), expected.text);
}

// ---------------------------------------------------------------------------------------------
// routing

fn route(pattern: &str, provider: &str) -> ModelRoute {
    ModelRoute {
        pattern: pattern.to_owned(),
        provider: provider.to_owned(),
        upstream_model: None,
        context_window: 8192,
    }
}

fn echo_providers(names: &[&str]) -> BTreeMap<String, ProviderConfig> {
    names
        .iter()
        .map(|name| ((*name).to_owned(), ProviderConfig::Echo))
        .collect()
}

#[test]
fn the_echo_default_serves_every_model_name_under_its_own_name() {
    let router = Router::echo_default();
    for model in ["gpt-4.1", "llama3", ""] {
        let resolved = router.resolve(model).unwrap();
        assert_eq!(resolved.provider_name, "echo");
        assert_eq!(resolved.upstream_model, model);
        assert_eq!(resolved.context_window, 8192);
    }
    assert_eq!(
        router.describe(),
        vec!["* (default) -> echo provider 'echo' (context 8192)"]
    );
}

#[tokio::test]
async fn an_empty_configuration_behaves_like_the_echo_default() {
    let router = Router::from_config(&RoutingConfig::default()).unwrap();
    assert_eq!(router.describe(), Router::echo_default().describe());
    let resolved = router.resolve("whatever-model").unwrap();
    assert_eq!(resolved.provider_name, "echo");
    assert_eq!(resolved.context_window, 8192);
    let output = guarded(resolved.provider.complete(request(conversation())))
        .await
        .unwrap();
    assert!(output.text.starts_with("Echo (5 context messages)"));
}

#[test]
fn the_first_matching_route_wins_then_the_default() {
    let cfg = RoutingConfig {
        providers: echo_providers(&["exact", "family", "fallback"]),
        models: vec![
            ModelRoute {
                upstream_model: Some("llama3.1:8b".to_owned()),
                context_window: 128_000,
                ..route("gpt-4o", "exact")
            },
            route("gpt-4*", "family"),
            route("gpt-4o-mini", "exact"),
        ],
        default: Some(ModelRoute {
            context_window: 4096,
            ..route("ignored", "fallback")
        }),
    };
    let router = Router::from_config(&cfg).unwrap();

    let exact = router.resolve("gpt-4o").unwrap();
    assert_eq!(exact.provider_name, "exact");
    assert_eq!(exact.upstream_model, "llama3.1:8b");
    assert_eq!(exact.context_window, 128_000);

    let family = router.resolve("gpt-4o-mini").unwrap();
    assert_eq!(
        family.provider_name, "family",
        "earlier glob beats later exact name"
    );
    assert_eq!(family.upstream_model, "gpt-4o-mini");

    let fallback = router.resolve("claude-3").unwrap();
    assert_eq!(fallback.provider_name, "fallback");
    assert_eq!(fallback.upstream_model, "claude-3");
    assert_eq!(fallback.context_window, 4096);

    assert_eq!(
        router.describe(),
        vec![
            "gpt-4o -> echo provider 'exact' as model 'llama3.1:8b' (context 128000)",
            "gpt-4* -> echo provider 'family' (context 8192)",
            "gpt-4o-mini -> echo provider 'exact' (context 8192)",
            "* (default) -> echo provider 'fallback' (context 4096)",
        ]
    );
}

#[test]
fn without_a_default_unmatched_models_are_unknown() {
    let cfg = RoutingConfig {
        providers: echo_providers(&["local"]),
        models: vec![route("llama*", "local")],
        default: None,
    };
    let router = Router::from_config(&cfg).unwrap();
    assert!(router.resolve("llama3").is_some());
    assert!(router.resolve("gpt-4").is_none());
    assert!(router.resolve("my-llama").is_none());
}

#[test]
fn a_route_to_an_unknown_provider_is_a_configuration_error() {
    let cfg = RoutingConfig {
        providers: echo_providers(&["local"]),
        models: vec![route("gpt-4*", "openai")],
        default: None,
    };
    let error = Router::from_config(&cfg).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownProvider { pattern, provider } if pattern == "gpt-4*" && provider == "openai"),
        "{error:?}"
    );
    assert!(error.to_string().contains("'openai'"));

    let cfg = RoutingConfig {
        providers: echo_providers(&["local"]),
        models: vec![],
        default: Some(route("*", "missing")),
    };
    assert!(matches!(
        Router::from_config(&cfg),
        Err(ConfigError::UnknownProvider { provider, .. }) if provider == "missing"
    ));
}

#[test]
fn routes_with_an_empty_pattern_or_no_context_are_rejected() {
    let cfg = RoutingConfig {
        providers: echo_providers(&["local"]),
        models: vec![route("a", "local"), route("", "local")],
        default: None,
    };
    assert!(matches!(
        Router::from_config(&cfg),
        Err(ConfigError::EmptyPattern { index: 1 })
    ));
    let cfg = RoutingConfig {
        providers: echo_providers(&["local"]),
        models: vec![ModelRoute {
            context_window: 0,
            ..route("a", "local")
        }],
        default: None,
    };
    assert!(matches!(
        Router::from_config(&cfg),
        Err(ConfigError::ZeroContextWindow { .. })
    ));
}

#[test]
fn a_missing_api_key_variable_names_the_provider_and_the_variable() {
    let cfg: RoutingConfig = serde_json::from_value(json!({
        "providers": {"cloud": {"kind": "openai", "base_url": "https://api.openai.com/v1",
                                 "api_key_env": "SKEIN_PROVIDERS_TEST_NEVER_SET_KEY"}},
        "default": {"provider": "cloud"}
    }))
    .unwrap();
    let error = Router::from_config(&cfg).unwrap_err();
    match &error {
        ConfigError::Provider { name, problem } => {
            assert_eq!(name, "cloud");
            assert!(
                matches!(problem.as_ref(), ConfigError::MissingApiKey { var } if var == "SKEIN_PROVIDERS_TEST_NEVER_SET_KEY")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("cloud") && message.contains("SKEIN_PROVIDERS_TEST_NEVER_SET_KEY"));
}

#[test]
fn bad_openai_settings_are_rejected() {
    for url in ["not a url", "ftp://example.com/v1"] {
        assert!(matches!(
            OpenAiProvider::new(settings(url)),
            Err(ConfigError::InvalidBaseUrl { .. })
        ));
    }
    for timeout in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let result = OpenAiProvider::new(OpenAiSettings {
            timeout_secs: timeout,
            ..settings("http://127.0.0.1:1/v1")
        });
        assert!(
            matches!(
                result,
                Err(ConfigError::InvalidTimeout {
                    field: "timeout_secs",
                    ..
                })
            ),
            "{timeout}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// configuration shape (the server reads TOML; serde_json exercises the same serde shape)

#[test]
fn a_full_configuration_parses_with_defaults_filled_in() {
    let cfg: RoutingConfig = serde_json::from_value(json!({
        "providers": {
            "local": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1"},
            "cloud": {"kind": "openai", "base_url": "https://api.openai.com/v1",
                      "api_key_env": "OPENAI_API_KEY", "connect_timeout_secs": 2, "timeout_secs": 30.5},
            "test": {"kind": "echo"}
        },
        "models": [
            {"pattern": "gpt-4*", "provider": "cloud", "context_window": 128000},
            {"pattern": "llama", "provider": "local", "upstream_model": "llama3.1:8b"}
        ],
        "default": {"provider": "test"}
    }))
    .unwrap();
    match &cfg.providers["local"] {
        ProviderConfig::Openai(s) => {
            assert_eq!(s.base_url, "http://127.0.0.1:11434/v1");
            assert_eq!(s.api_key_env, None);
            assert_eq!(s.connect_timeout_secs, 5.0);
            assert_eq!(s.timeout_secs, 120.0);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &cfg.providers["cloud"] {
        ProviderConfig::Openai(s) => {
            assert_eq!(s.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
            assert_eq!(s.connect_timeout_secs, 2.0);
            assert_eq!(s.timeout_secs, 30.5);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(cfg.providers["test"], ProviderConfig::Echo));
    assert_eq!(cfg.models[0].context_window, 128_000);
    assert_eq!(cfg.models[0].upstream_model, None);
    assert_eq!(cfg.models[1].context_window, 8192);
    assert_eq!(cfg.models[1].upstream_model.as_deref(), Some("llama3.1:8b"));
    let default = cfg.default.as_ref().unwrap();
    assert_eq!(default.provider, "test");
    assert_eq!(default.context_window, 8192);

    let empty: RoutingConfig = serde_json::from_value(json!({})).unwrap();
    assert!(empty.providers.is_empty() && empty.models.is_empty() && empty.default.is_none());
}

#[test]
fn misspelled_or_unknown_configuration_keys_are_rejected() {
    let bad = [
        json!({"provider": {}}),
        json!({"providers": {"x": {"kind": "anthropic"}}}),
        json!({"providers": {"x": {"base_url": "http://h/v1"}}}),
        json!({"providers": {"x": {"kind": "openai", "base_url": "http://h/v1", "api_key": "sk-1"}}}),
        json!({"providers": {"x": {"kind": "openai"}}}),
        json!({"providers": {"x": {"kind": "echo", "base_url": "http://h/v1"}}}),
        json!({"models": [{"pattern": "*", "provider": "x", "context": 10}]}),
        json!({"models": [{"pattern": "*"}]}),
    ];
    for value in bad {
        assert!(
            serde_json::from_value::<RoutingConfig>(value.clone()).is_err(),
            "accepted {value}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible provider: complete

#[tokio::test]
async fn a_completion_sends_the_context_and_returns_the_answer_with_reported_usage() {
    let fake = start(json_answer(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 31, "completion_tokens": 2, "total_tokens": 33}}),
    ));
    let var = "SKEIN_PROVIDERS_TEST_KEY_COMPLETION";
    std::env::set_var(var, "sk-test-123");
    let provider = OpenAiProvider::new(OpenAiSettings {
        api_key_env: Some(var.to_owned()),
        ..settings(&fake.base_url)
    })
    .unwrap();
    assert!(!format!("{provider:?}").contains("sk-test-123"));

    let output = guarded(provider.complete(ModelRequest {
        model: "llama3.1:8b".to_owned(),
        messages: conversation(),
        temperature: Some(0.5),
        top_p: Some(0.9),
        max_output_tokens: Some(64),
    }))
    .await
    .unwrap();
    assert_eq!(
        output,
        ModelOutput {
            text: "Paris.".to_owned(),
            usage: Usage {
                input_tokens: 31,
                output_tokens: 2,
                total_tokens: 33
            }
        }
    );

    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer sk-test-123")
    );
    assert_eq!(
        received[0].body,
        json!({
            "model": "llama3.1:8b",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "system", "content": "Answer in English."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "what is the capital of France?"}
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "max_tokens": 64,
            "stream": false
        })
    );
}

#[tokio::test]
async fn without_a_key_no_authorization_is_sent_and_missing_usage_is_counted_locally() {
    let fake = start(json_answer(
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": "Bonjour le monde"}}]}),
    ));
    let req = request(vec![ChatMessage::new(Role::User, "hello world")]);
    let output = guarded(provider(&fake).complete(req.clone()))
        .await
        .unwrap();
    assert_eq!(output.text, "Bonjour le monde");
    assert_eq!(
        output.usage,
        Usage::estimate(&req.messages, "Bonjour le monde")
    );
    assert_eq!(output.usage.input_tokens, 2);

    let received = fake.received();
    assert_eq!(received[0].authorization, None);
    assert_eq!(
        received[0].body,
        json!({"model": "test-model", "messages": [{"role": "user", "content": "hello world"}],
               "stream": false})
    );
}

#[tokio::test]
async fn an_upstream_http_error_is_reported_with_its_status_and_body() {
    let fake = start(json_answer(
        500,
        json!({"error": {"message": "model crashed", "type": "server_error"}}),
    ));
    let message =
        upstream_message(guarded(provider(&fake).complete(request(conversation()))).await);
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(message.contains("model crashed"), "{message}");

    let events = collect(provider(&fake).stream(request(conversation()))).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let message = upstream_message(events.into_iter().next().unwrap());
    assert!(
        message.contains("HTTP 500") && message.contains("model crashed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_long_error_body_is_cut_to_200_characters() {
    let fake = start(Behaviour::Json {
        status: 503,
        body: "x".repeat(1000),
    });
    let message =
        upstream_message(guarded(provider(&fake).complete(request(conversation()))).await);
    assert_eq!(message, format!("HTTP 503: {}", "x".repeat(200)));
}

#[tokio::test]
async fn the_api_key_never_appears_in_an_error_message() {
    let var = "SKEIN_PROVIDERS_TEST_KEY_LEAK";
    std::env::set_var(var, "sk-secret-leak-check");
    let fake = start(json_answer(
        401,
        json!({"error": {"message": "Incorrect API key provided: sk-secret-leak-check"}}),
    ));
    let provider = OpenAiProvider::new(OpenAiSettings {
        api_key_env: Some(var.to_owned()),
        ..settings(&fake.base_url)
    })
    .unwrap();
    let error = guarded(provider.complete(request(conversation())))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(!message.contains("sk-secret-leak-check"), "{message}");
}

#[tokio::test]
async fn a_malformed_answer_is_an_upstream_error() {
    let fake = start(Behaviour::Json {
        status: 200,
        body: "{\"choices\": [".to_owned(),
    });
    let message =
        upstream_message(guarded(provider(&fake).complete(request(conversation()))).await);
    assert!(message.contains("malformed"), "{message}");

    let fake = start(json_answer(200, json!({"choices": []})));
    upstream_message(guarded(provider(&fake).complete(request(conversation()))).await);
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_a_timeout() {
    let fake = start(Behaviour::Hang);
    let result = guarded(quick_provider(&fake).complete(request(conversation()))).await;
    assert!(
        matches!(result, Err(ProviderError::Timeout(_))),
        "{result:?}"
    );

    let events = collect(quick_provider(&fake).stream(request(conversation()))).await;
    assert!(
        matches!(events.as_slice(), [Err(ProviderError::Timeout(_))]),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_an_upstream_error() {
    let url = closed_port_url();
    let provider = OpenAiProvider::new(settings(&url)).unwrap();
    upstream_message(guarded(provider.complete(request(conversation()))).await);

    let events = collect(provider.stream(request(conversation()))).await;
    assert_eq!(events.len(), 1, "{events:?}");
    upstream_message(events.into_iter().next().unwrap());
}

#[tokio::test]
async fn providers_built_by_the_router_call_the_configured_endpoint_with_the_mapped_name() {
    let fake = start(json_answer(
        200,
        json!({"choices": [{"message": {"content": "ok"}}]}),
    ));
    let cfg: RoutingConfig = serde_json::from_value(json!({
        "providers": {"local": {"kind": "openai", "base_url": fake.base_url}},
        "models": [{"pattern": "gpt-4*", "provider": "local", "upstream_model": "llama3.1:8b",
                    "context_window": 128000}]
    }))
    .unwrap();
    let router = Router::from_config(&cfg).unwrap();
    assert_eq!(
        router.describe(),
        vec!["gpt-4* -> openai provider 'local' as model 'llama3.1:8b' (context 128000)"]
    );
    let resolved = router.resolve("gpt-4o").unwrap();
    assert_eq!(resolved.context_window, 128_000);
    let output = guarded(resolved.provider.complete(ModelRequest {
        model: resolved.upstream_model.clone(),
        ..request(conversation())
    }))
    .await
    .unwrap();
    assert_eq!(output.text, "ok");
    assert_eq!(fake.received()[0].body["model"], "llama3.1:8b");
    assert!(router.resolve("llama3").is_none());
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible provider: stream

#[tokio::test]
async fn a_stream_yields_the_deltas_then_the_completed_answer_with_reported_usage() {
    let usage_event = format!(
        "data: {}\n\n",
        json!({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}})
    );
    let first = format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    );
    let fake = start(sse(
        &[
            ": connected\n\n",
            &first,
            &delta_event("The capital"),
            // two events in one write, the second cut across two writes
            &format!("{}{}", delta_event(" of France"), &delta_event(" is")[..12]),
            &delta_event(" is")[12..],
            "event: message\n",
            &delta_event(" Paris."),
            &format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            ),
            &usage_event,
            "data: [DONE]\n\n",
        ],
        // a server that keeps the connection open after [DONE] must not matter
        End::Stall,
    ));
    let var = "SKEIN_PROVIDERS_TEST_KEY_STREAM";
    std::env::set_var(var, "sk-stream");
    let provider = OpenAiProvider::new(OpenAiSettings {
        api_key_env: Some(var.to_owned()),
        ..settings(&fake.base_url)
    })
    .unwrap();

    let events = collect(provider.stream(request(conversation()))).await;
    let text = "The capital of France is Paris.";
    assert_eq!(deltas(&events), text);
    assert_eq!(
        events.last().unwrap(),
        &Ok(StreamEvent::Completed(ModelOutput {
            text: text.to_owned(),
            usage: Usage {
                input_tokens: 40,
                output_tokens: 3,
                total_tokens: 43
            }
        }))
    );
    assert_eq!(
        events.len(),
        5,
        "four non-empty deltas and the completion: {events:?}"
    );

    let received = fake.received();
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer sk-stream")
    );
    assert_eq!(received[0].body["stream"], json!(true));
    assert_eq!(
        received[0].body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(received[0].body["messages"][1]["role"], "system");
}

#[tokio::test]
async fn a_stream_without_a_usage_chunk_counts_usage_locally() {
    let fake = start(sse(
        &[
            &delta_event("Hello"),
            &delta_event(" there"),
            "data: [DONE]\n\n",
        ],
        End::Close,
    ));
    let req = request(conversation());
    let events = collect(provider(&fake).stream(req.clone())).await;
    assert_eq!(
        events.last().unwrap(),
        &Ok(StreamEvent::Completed(ModelOutput {
            text: "Hello there".to_owned(),
            usage: Usage::estimate(&req.messages, "Hello there"),
        }))
    );
}

#[tokio::test]
async fn a_stream_that_ends_before_done_is_an_upstream_error() {
    let fake = start(sse(&[&delta_event("Hel"), &delta_event("lo")], End::Close));
    let events = collect(provider(&fake).stream(request(conversation()))).await;
    assert_eq!(deltas(&events), "Hello", "{events:?}");
    assert_eq!(events.len(), 3, "{events:?}");
    let message = upstream_message(events[2].clone());
    assert!(message.contains("[DONE]"), "{message}");
}

#[tokio::test]
async fn a_connection_broken_mid_stream_is_an_upstream_error() {
    let mut fake = start(sse(&[&delta_event("Hel")], End::Abort));
    let mut stream = provider(&fake).stream(request(conversation()));
    let first = guarded(stream.next()).await;
    assert_eq!(first, Some(Ok(StreamEvent::Delta("Hel".to_owned()))));
    fake.abort();
    let rest = collect(stream).await;
    assert!(
        matches!(rest.as_slice(), [Err(ProviderError::Upstream(_))]),
        "{rest:?}"
    );
}

#[tokio::test]
async fn a_malformed_stream_chunk_is_an_upstream_error_and_ends_the_stream() {
    let fake = start(sse(
        &[
            &delta_event("Hel"),
            "data: {\"choices\": [{\"delta\": \n\n",
            &delta_event("lo"),
            "data: [DONE]\n\n",
        ],
        End::Close,
    ));
    let events = collect(provider(&fake).stream(request(conversation()))).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], Ok(StreamEvent::Delta("Hel".to_owned())));
    let message = upstream_message(events[1].clone());
    assert!(message.contains("malformed"), "{message}");
}

#[tokio::test]
async fn an_error_event_in_the_stream_is_an_upstream_error() {
    let fake = start(sse(
        &[
            &delta_event("Hel"),
            &format!(
                "data: {}\n\n",
                json!({"error": {"message": "out of memory"}})
            ),
        ],
        End::Close,
    ));
    let events = collect(provider(&fake).stream(request(conversation()))).await;
    let message = upstream_message(events.last().unwrap().clone());
    assert!(message.contains("out of memory"), "{message}");
}

#[tokio::test]
async fn a_stream_that_stalls_longer_than_the_timeout_is_a_timeout() {
    let fake = start(sse(&[&delta_event("Hel")], End::Stall));
    // Long enough for the first chunk to arrive on a busy machine, short enough for a test.
    let provider = OpenAiProvider::new(OpenAiSettings {
        timeout_secs: 1.0,
        ..settings(&fake.base_url)
    })
    .unwrap();
    let events = collect(provider.stream(request(conversation()))).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], Ok(StreamEvent::Delta("Hel".to_owned())));
    assert!(
        matches!(events[1], Err(ProviderError::Timeout(_))),
        "{events:?}"
    );
}

#[test]
fn usage_uses_known_token_counts_and_counts_the_rest() {
    let known = ChatMessage {
        tokens: Some(1_000),
        ..ChatMessage::new(Role::User, "hello world")
    };
    let unknown = ChatMessage::new(Role::User, "hello world");
    let usage = skein_providers::Usage::estimate(&[known, unknown], "hello world");
    // 1,000 as given, plus "hello world" counted (2 tokens).
    assert_eq!(usage.input_tokens, 1_002);
    assert_eq!(usage.output_tokens, 2);
    assert_eq!(usage.total_tokens, 1_004);
}
