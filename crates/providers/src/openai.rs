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
    ChatMessage, ConfigError, ModelOutput, ModelRequest, Provider, ProviderError, ProviderStream,
    Role, StreamEvent, ToolPart, Usage,
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
    /// `null` beside tool calls.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> WireMessage<'a> {
    fn text(role: Role, content: &'a str) -> Self {
        Self {
            role: wire_role(role),
            content: Some(content),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// The context as Chat Completions messages. Tool calls and their outputs
/// go where Chat Completions takes them: a run of calls becomes one
/// assistant message with `tool_calls`, followed by one `tool` message per
/// output of the run of outputs right after it. A call without an output
/// there, or an output without its call, is left out (the API refuses
/// either alone).
fn wire_messages(messages: &[ChatMessage]) -> Vec<WireMessage<'_>> {
    let is_call = |m: &ChatMessage| matches!(m.tool, Some(ToolPart::Call { .. }));
    let is_output = |m: &ChatMessage| matches!(m.tool, Some(ToolPart::Output { .. }));
    let mut out = Vec::with_capacity(messages.len());
    let mut at = 0;
    while let Some(m) = messages.get(at) {
        match &m.tool {
            None => {
                out.push(WireMessage::text(m.role, &m.content));
                at += 1;
            }
            Some(ToolPart::Output { .. }) => at += 1,
            Some(ToolPart::Call { .. }) => {
                let calls_end = at + messages[at..].iter().take_while(|m| is_call(m)).count();
                let outputs_end = calls_end
                    + messages[calls_end..]
                        .iter()
                        .take_while(|m| is_output(m))
                        .count();
                let calls = &messages[at..calls_end];
                let outputs = &messages[calls_end..outputs_end];
                let output_of = |id: &str| {
                    outputs.iter().find_map(|m| match &m.tool {
                        Some(ToolPart::Output { call_id, output }) if call_id == id => {
                            Some(output.as_str())
                        }
                        _ => None,
                    })
                };
                let mut tool_calls = Vec::new();
                let mut results = Vec::new();
                for call in calls {
                    if let Some(ToolPart::Call {
                        call_id,
                        name,
                        arguments,
                    }) = &call.tool
                    {
                        if results
                            .iter()
                            .any(|r: &WireMessage| r.tool_call_id == Some(call_id.as_str()))
                        {
                            continue;
                        }
                        if let Some(output) = output_of(call_id) {
                            tool_calls.push(WireToolCall {
                                id: call_id,
                                kind: "function",
                                function: WireFunction { name, arguments },
                            });
                            results.push(WireMessage {
                                role: "tool",
                                content: Some(output),
                                tool_calls: Vec::new(),
                                tool_call_id: Some(call_id),
                            });
                        }
                    }
                }
                if !tool_calls.is_empty() {
                    out.push(WireMessage {
                        role: "assistant",
                        content: None,
                        tool_calls,
                        tool_call_id: None,
                    });
                    out.extend(results);
                }
                at = outputs_end;
            }
        }
    }
    out
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
        Role::Tool => "tool",
    }
}

impl<'a> WireRequest<'a> {
    fn new(req: &'a ModelRequest, stream: bool) -> Self {
        Self {
            model: &req.model,
            messages: wire_messages(&req.messages),
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
