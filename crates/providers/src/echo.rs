//! The built-in echo model.

use futures_util::future::BoxFuture;

use crate::{
    ModelOutput, ModelRequest, Provider, ProviderError, ProviderStream, Role, StreamEvent, Usage,
};

/// Built-in deterministic model that needs no network.
///
/// Its answer is `Echo ({n} context messages): {last user text}`, where `n` counts every message
/// of the context (all roles) and the last user text is empty when there is none. Usage is
/// counted with [`crate::tokens::count`]. It never fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoProvider;

impl EchoProvider {
    /// The answer (text and usage) to `req`.
    pub fn answer(req: &ModelRequest) -> ModelOutput {
        let last_user_text = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str());
        let text = format!(
            "Echo ({} context messages): {}",
            req.messages.len(),
            last_user_text
        );
        let usage = Usage::estimate(&req.messages, &text);
        ModelOutput { text, usage }
    }
}

impl Provider for EchoProvider {
    fn is_echo(&self) -> bool {
        true
    }

    fn complete(
        &self,
        req: ModelRequest,
    ) -> BoxFuture<'static, Result<ModelOutput, ProviderError>> {
        let output = Self::answer(&req);
        Box::pin(async move { Ok(output) })
    }

    fn stream(&self, req: ModelRequest) -> ProviderStream {
        let output = Self::answer(&req);
        let mut events: Vec<Result<StreamEvent, ProviderError>> = output
            .text
            .split_inclusive(' ')
            .map(|chunk| Ok(StreamEvent::Delta(chunk.to_owned())))
            .collect();
        events.push(Ok(StreamEvent::Completed(output)));
        Box::pin(futures_util::stream::iter(events))
    }
}
