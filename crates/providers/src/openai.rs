//! Provider for OpenAI-compatible Chat Completions endpoints.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::sse::SseParser;
use crate::{
    ConfigError, ModelOutput, ModelRequest, Provider, ProviderError, ProviderStream, Role,
    StreamEvent, Usage,
};

/// Default time allowed to open a connection, in seconds.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 5.0;
/// Default request timeout, in seconds (see [`OpenAiSettings::timeout_secs`]).
pub const DEFAULT_TIMEOUT_SECS: f64 = 120.0;

/// How much of an upstream error body is quoted in [`ProviderError::Upstream`].
const ERROR_BODY_CHARS: usize = 200;

fn default_connect_timeout_secs() -> f64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}

fn default_timeout_secs() -> f64 {
    DEFAULT_TIMEOUT_SECS
}

/// Settings of an [`OpenAiProvider`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    /// API root, for example `http://127.0.0.1:11434/v1`; requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// Name of the environment variable holding the API key, read once at construction. Without
    /// it no `Authorization` header is sent (Ollama, llama.cpp and vLLM need none by default).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Time allowed to open a connection, in seconds (default 5).
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: f64,
    /// In seconds (default 120): for a complete answer, the whole request; for a streamed answer,
    /// both the wait for the response and the longest silence between two chunks.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
}

/// A model served by an OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama,
/// llama.cpp server, ...).
///
/// Cheap to clone; clones share one HTTP client (and its connection pool).
#[derive(Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    endpoint: String,
    /// `Bearer <key>`, marked sensitive.
    authorization: Option<HeaderValue>,
    /// The key itself, only to scrub it from error messages.
    api_key: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("endpoint", &self.inner.endpoint)
            .field(
                "api_key",
                &self.inner.api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn seconds(field: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value > 0.0 {
        if let Ok(duration) = Duration::try_from_secs_f64(value) {
            return Ok(duration);
        }
    }
    Err(ConfigError::InvalidTimeout { field, value })
}

fn endpoint(base_url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidBaseUrl {
        url: base_url.to_owned(),
        reason,
    };
    let url = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme '{}' is not http or https",
            url.scheme()
        )));
    }
    Ok(format!(
        "{}/chat/completions",
        base_url.trim_end_matches('/')
    ))
}

fn api_key(var: &str) -> Result<(String, HeaderValue), ConfigError> {
    let key = match std::env::var(var) {
        Ok(key) if !key.trim().is_empty() => key.trim().to_owned(),
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            return Err(ConfigError::MissingApiKey {
                var: var.to_owned(),
            })
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(ConfigError::InvalidApiKey {
                var: var.to_owned(),
                reason: "not valid unicode".to_owned(),
            })
        }
    };
    let mut header = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
        ConfigError::InvalidApiKey {
            var: var.to_owned(),
            reason: "contains characters not allowed in an HTTP header".to_owned(),
        }
    })?;
    header.set_sensitive(true);
    Ok((key, header))
}

impl OpenAiProvider {
    /// Builds the provider: validates the settings, reads the API key from its environment
    /// variable and builds one HTTP client.
    pub fn new(settings: OpenAiSettings) -> Result<Self, ConfigError> {
        let endpoint = endpoint(&settings.base_url)?;
        let connect_timeout = seconds("connect_timeout_secs", settings.connect_timeout_secs)?;
        let timeout = seconds("timeout_secs", settings.timeout_secs)?;
        let (api_key, authorization) = match &settings.api_key_env {
            Some(var) => {
                let (key, header) = api_key(var)?;
                (Some(key), Some(header))
            }
            None => (None, None),
        };
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| ConfigError::HttpClient(error_chain(&e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                endpoint,
                authorization,
                api_key,
                timeout,
            }),
        })
    }
}

/// The request body of Chat Completions.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

fn wire_role(role: Role) -> &'static str {
    match role {
        // Many compatible servers reject "developer".
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

impl<'a> WireRequest<'a> {
    fn new(req: &'a ModelRequest, stream: bool) -> Self {
        Self {
            model: &req.model,
            messages: req
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: wire_role(m.role),
                    content: &m.content,
                })
                .collect(),
            temperature: req.temperature,
            top_p: req.top_p,
            max_tokens: req.max_output_tokens,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

/// A non-streamed answer.
#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireContent>,
}

/// `message` of an answer or `delta` of a chunk.
#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    total_tokens: Option<u32>,
}

/// One event of a streamed answer.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Option<Vec<WireChunkChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireContent>,
}

/// The reported usage, with what is missing counted locally.
fn usage(reported: Option<WireUsage>, req: &ModelRequest, text: &str) -> Usage {
    let estimate = || Usage::estimate(&req.messages, text);
    let Some(reported) = reported else {
        return estimate();
    };
    let (input_tokens, output_tokens) = match (reported.prompt_tokens, reported.completion_tokens) {
        (Some(input), Some(output)) => (input, output),
        (input, output) => {
            let estimate = estimate();
            (
                input.unwrap_or(estimate.input_tokens),
                output.unwrap_or(estimate.output_tokens),
            )
        }
    };
    Usage {
        input_tokens,
        output_tokens,
        total_tokens: reported
            .total_tokens
            .unwrap_or(input_tokens.saturating_add(output_tokens)),
    }
}

/// An error and its causes, joined with `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// `HTTP 500: <start of the body>`.
fn status_message(status: StatusCode, body: &[u8]) -> String {
    let body: String = String::from_utf8_lossy(body)
        .chars()
        .take(ERROR_BODY_CHARS)
        .collect();
    format!("HTTP {}: {}", status.as_u16(), body.trim())
}

impl Inner {
    fn request(&self, req: &ModelRequest, stream: bool) -> reqwest::RequestBuilder {
        log::debug!(
            "POST {} model={} messages={} stream={stream}",
            self.endpoint,
            req.model,
            req.messages.len()
        );
        let mut builder = self
            .client
            .post(&self.endpoint)
            .json(&WireRequest::new(req, stream));
        if stream {
            builder = builder.header(ACCEPT, "text/event-stream");
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        builder
    }

    /// `message` without the API key.
    fn scrub(&self, message: String) -> String {
        match &self.api_key {
            Some(key) if message.contains(key.as_str()) => message.replace(key.as_str(), "***"),
            _ => message,
        }
    }

    fn upstream(&self, message: String) -> ProviderError {
        ProviderError::Upstream(self.scrub(message))
    }

    fn transport(&self, error: &reqwest::Error) -> ProviderError {
        let message = self.scrub(error_chain(error));
        if error.is_timeout() {
            ProviderError::Timeout(message)
        } else {
            ProviderError::Upstream(message)
        }
    }

    fn timed_out(&self, what: &str) -> ProviderError {
        ProviderError::Timeout(format!(
            "{what} from {} within {} s",
            self.endpoint,
            self.timeout.as_secs_f64()
        ))
    }

    async fn complete(&self, req: ModelRequest) -> Result<ModelOutput, ProviderError> {
        let exchange = async {
            let response = self
                .request(&req, false)
                .send()
                .await
                .map_err(|e| self.transport(&e))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| self.transport(&e))?;
            Ok::<(StatusCode, Bytes), ProviderError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timed_out("no complete answer"))??;
        if !status.is_success() {
            return Err(self.upstream(status_message(status, &body)));
        }
        let completion: WireCompletion = serde_json::from_slice(&body)
            .map_err(|e| self.upstream(format!("malformed answer: {e}")))?;
        let choice = completion
            .choices
            .and_then(|choices| choices.into_iter().next())
            .ok_or_else(|| self.upstream("answer has no choices".to_owned()))?;
        let text = choice.message.and_then(|m| m.content).unwrap_or_default();
        let usage = usage(completion.usage, &req, &text);
        Ok(ModelOutput { text, usage })
    }

    fn stream(self: Arc<Self>, req: ModelRequest) -> ProviderStream {
        Box::pin(async_stream::stream! {
            let sent = tokio::time::timeout(self.timeout, self.request(&req, true).send()).await;
            let response = match sent {
                Err(_) => {
                    yield Err(self.timed_out("no response"));
                    return;
                }
                Ok(Err(e)) => {
                    yield Err(self.transport(&e));
                    return;
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            if !status.is_success() {
                let error = match tokio::time::timeout(self.timeout, response.bytes()).await {
                    Ok(Ok(body)) => self.upstream(status_message(status, &body)),
                    _ => self.upstream(status_message(status, b"")),
                };
                yield Err(error);
                return;
            }
            let mut body = Box::pin(response.bytes_stream());
            let mut parser = SseParser::default();
            let mut text = String::new();
            let mut reported_usage = None;
            loop {
                let next = match tokio::time::timeout(self.timeout, body.next()).await {
                    Err(_) => {
                        yield Err(self.timed_out("no further chunk"));
                        return;
                    }
                    Ok(next) => next,
                };
                let ended = next.is_none();
                let events = match next {
                    None => parser.finish(),
                    Some(Ok(bytes)) => parser.push(&bytes),
                    Some(Err(e)) => {
                        yield Err(self.transport(&e));
                        return;
                    }
                };
                let events = match events {
                    Ok(events) => events,
                    Err(e) => {
                        yield Err(self.upstream(e.to_string()));
                        return;
                    }
                };
                for data in events {
                    if data.trim() == "[DONE]" {
                        let usage = usage(reported_usage.take(), &req, &text);
                        yield Ok(StreamEvent::Completed(ModelOutput { text, usage }));
                        return;
                    }
                    let chunk: WireChunk = match serde_json::from_str(&data) {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            yield Err(self.upstream(format!("malformed stream chunk: {e}")));
                            return;
                        }
                    };
                    if let Some(error) = chunk.error {
                        let message = error
                            .get("message")
                            .and_then(|m| m.as_str())
                            .map_or_else(|| error.to_string(), str::to_owned);
                        yield Err(self.upstream(format!("error in stream: {message}")));
                        return;
                    }
                    if chunk.usage.is_some() {
                        reported_usage = chunk.usage;
                    }
                    let delta = chunk
                        .choices
                        .and_then(|choices| choices.into_iter().next())
                        .and_then(|choice| choice.delta)
                        .and_then(|delta| delta.content)
                        .filter(|content| !content.is_empty());
                    if let Some(delta) = delta {
                        text.push_str(&delta);
                        yield Ok(StreamEvent::Delta(delta));
                    }
                }
                if ended {
                    yield Err(self.upstream("stream ended before [DONE]".to_owned()));
                    return;
                }
            }
        })
    }
}

impl Provider for OpenAiProvider {
    fn complete(
        &self,
        req: ModelRequest,
    ) -> BoxFuture<'static, Result<ModelOutput, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.complete(req).await })
    }

    fn stream(&self, req: ModelRequest) -> ProviderStream {
        Arc::clone(&self.inner).stream(req)
    }
}
