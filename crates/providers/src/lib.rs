//! Skein's model providers.
//!
//! A [`Provider`] turns a [`ModelRequest`] (the full context of a turn) into a [`ModelOutput`],
//! either in one piece ([`Provider::complete`]) or as a stream of text deltas
//! ([`Provider::stream`]). Two kinds ship:
//!
//! - [`EchoProvider`]: built in, deterministic, no network. Its answer states how many context
//!   messages it saw and the last user text, so context injection is visible end to end.
//! - [`OpenAiProvider`]: any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama,
//!   llama.cpp server, ...).
//!
//! Which provider serves which model name is decided by a [`Router`] built from a
//! [`RoutingConfig`]; an empty configuration routes every model name to the echo provider, so a
//! fresh install works offline.

mod echo;
mod error;
mod openai;
mod pair;
mod routing;
mod sse;
pub mod tokens;

use std::pin::Pin;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use echo::EchoProvider;
pub use error::{ConfigError, ProviderError};
pub use openai::{
    OpenAiProvider, OpenAiSettings, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_TIMEOUT_SECS,
};
pub use routing::{
    ModelRoute, ProviderConfig, ResolvedModel, Router, RoutingConfig, DEFAULT_CONTEXT_WINDOW,
    ECHO_PROVIDER_NAME,
};

/// Who wrote a message of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the operator or the assistant definition.
    System,
    /// Instructions from the developer (sent upstream as `system` by the OpenAI provider).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call ([`ToolPart::Output`]).
    Tool,
}

/// A tool call of the model or its result, from a conversation's items
/// (OpenAI's `function_call` and `function_call_output`). Providers send
/// them where their API can take them and leave them out otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolPart {
    /// The model called a function.
    Call {
        /// Links the call with its output.
        call_id: String,
        /// The function's name.
        name: String,
        /// Its arguments, a JSON text.
        arguments: String,
    },
    /// What the call returned.
    Output {
        /// The call it answers.
        call_id: String,
        /// The result, as text.
        output: String,
    },
}

/// One message of the context sent to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Its token count when already known (Skein counts every message once,
    /// when it is written); providers that report usage themselves use it
    /// instead of counting again.
    pub tokens: Option<u32>,
    /// A tool call (role assistant) or a tool's result (role tool) instead
    /// of text.
    pub tool: Option<ToolPart>,
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tokens: None,
            tool: None,
        }
    }

    /// The token count: the known one, or counted now.
    pub fn token_count(&self) -> u32 {
        self.tokens.unwrap_or_else(|| tokens::count(&self.content))
    }
}

/// What a provider is asked to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// The upstream model name to send (after routing's name mapping).
    pub model: String,
    /// The full context: instructions and system messages first, then the stored history, then
    /// the new inputs.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature, passed through when set.
    pub temperature: Option<f64>,
    /// Nucleus sampling, passed through when set.
    pub top_p: Option<f64>,
    /// Upper bound on the answer's length in tokens, passed through when set.
    pub max_output_tokens: Option<u32>,
}

/// Token accounting of one model call.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Tokens of the context sent to the model.
    pub input_tokens: u32,
    /// Tokens of the answer.
    pub output_tokens: u32,
    /// Input plus output, as reported by the upstream when it reports it.
    pub total_tokens: u32,
}

impl Usage {
    /// Usage counted locally with [`tokens::count`]: the contents of `messages` as input, `text`
    /// as output. Used by the echo provider and when an upstream does not report usage.
    pub fn estimate(messages: &[ChatMessage], text: &str) -> Self {
        let input_tokens = messages
            .iter()
            .map(ChatMessage::token_count)
            .fold(0u32, u32::saturating_add);
        let output_tokens = tokens::count(text);
        Self {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
        }
    }
}

/// A complete answer of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    /// The answer text.
    pub text: String,
    /// Token accounting.
    pub usage: Usage,
}

/// One item of a streamed answer: zero or more [`StreamEvent::Delta`], then exactly one
/// [`StreamEvent::Completed`]; or an error, after which the stream ends.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of the answer text.
    Delta(String),
    /// The whole answer (its text is the concatenation of the deltas) and its usage; always last.
    Completed(ModelOutput),
}

/// A streamed answer, see [`StreamEvent`].
pub type ProviderStream =
    Pin<Box<dyn futures_core::Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// A model backend.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Answers `req` in one piece.
    fn complete(&self, req: ModelRequest)
        -> BoxFuture<'static, Result<ModelOutput, ProviderError>>;

    /// Answers `req` as a stream of deltas ending with [`StreamEvent::Completed`], or with an
    /// error.
    fn stream(&self, req: ModelRequest) -> ProviderStream;

    /// True for the built-in echo model, which cannot follow instructions:
    /// features that prompt a model (thread titles) use a deterministic rule
    /// instead.
    fn is_echo(&self) -> bool {
        false
    }
}
