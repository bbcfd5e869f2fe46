//! Model responses (`/v1/model/response`): turns on threads and without,
//! streaming, cancel, concurrency, chains; against the echo model and a fake
//! OpenAI-compatible upstream.

mod basics;
mod cancel;
mod chains;
mod concurrency;
pub mod fake_upstream;
mod faults;
mod reconnect;
pub mod rewinds;
mod streaming;

use serde_json::{json, Value};

/// Routes `fake-*` to the fake upstream, `hang` to it with a short timeout,
/// everything else to echo with the given context window.
pub fn routing(upstream: &str, echo_window: u32) -> skein_providers::Router {
    let cfg: skein_providers::RoutingConfig = serde_json::from_value(json!({
        "providers": {
            "echo": {"kind": "echo"},
            "fake": {"kind": "openai", "base_url": upstream, "timeout_secs": 30.0},
            "fake_fast": {"kind": "openai", "base_url": upstream, "timeout_secs": 0.3}
        },
        "models": [
            {"pattern": "hang", "provider": "fake_fast"},
            {"pattern": "fake-*", "provider": "fake"}
        ],
        "default": {"provider": "echo", "context_window": echo_window}
    }))
    .unwrap();
    skein_providers::Router::from_config(&cfg).unwrap()
}

/// A user input of one text.
pub fn user(text: &str) -> Value {
    json!({"role": "user", "texts": [{"text": text}]})
}

/// The text of a response's first output.
pub fn output_text(r: &Value) -> String {
    r["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
