//! Metrics of model calls (docs/metrics.md): in flight, duration, time to
//! first text, errors and tokens, by provider and model route (both come
//! from the configuration, so the label values are bounded).

use crate::EngineError;
use skein_providers::{ProviderError, ResolvedModel, Usage};
use std::time::Instant;

/// One model call being measured; counts as in flight until dropped.
pub(crate) struct Call {
    provider: String,
    route: String,
    started: Instant,
}

impl Call {
    /// A call starting now.
    pub(crate) fn start(model: &ResolvedModel) -> Self {
        metrics::gauge!("skein_responses_in_flight").increment(1.0);
        Self {
            provider: model.provider_name.clone(),
            route: model.route.clone(),
            started: Instant::now(),
        }
    }

    fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn duration(&self, outcome: &'static str) {
        metrics::histogram!("skein_upstream_request_duration_seconds",
            "provider" => self.provider.clone(), "model" => self.route.clone(),
            "outcome" => outcome)
        .record(self.seconds());
    }

    /// The first text arrived.
    pub(crate) fn first_text(&self) {
        metrics::histogram!("skein_upstream_time_to_first_token_seconds",
            "provider" => self.provider.clone(), "model" => self.route.clone())
        .record(self.seconds());
    }

    /// The model answered, using these tokens.
    pub(crate) fn completed(&self, usage: &Usage) {
        self.duration("completed");
        for (direction, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            metrics::counter!("skein_tokens_total",
                "provider" => self.provider.clone(), "model" => self.route.clone(),
                "direction" => direction)
            .increment(u64::from(n));
        }
    }

    /// The call failed.
    pub(crate) fn failed(&self, e: &EngineError) {
        self.duration("failed");
        let kind = match e {
            EngineError::Upstream(ProviderError::Timeout(_)) => "timeout",
            EngineError::Upstream(ProviderError::Upstream(_)) => "upstream",
            _ => "other",
        };
        metrics::counter!("skein_upstream_errors_total",
            "provider" => self.provider.clone(), "model" => self.route.clone(),
            "kind" => kind)
        .increment(1);
    }

    /// The call was cancelled by the client.
    pub(crate) fn cancelled(&self) {
        self.duration("cancelled");
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        metrics::gauge!("skein_responses_in_flight").decrement(1.0);
    }
}
