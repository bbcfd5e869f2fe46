//! The rules of a model turn that do not need storage: sampling ranges and
//! which settings apply when the request, the bound assistant and the
//! defaults disagree.

use crate::assistant::{Temperature, MAX_TEMPERATURE, MIN_TEMPERATURE};
use crate::Assistant;

/// The model name reported when neither the request nor the assistant
/// names one (the routing's default route serves it).
pub const DEFAULT_MODEL_NAME: &str = "default";
/// The lowest `top_p`.
pub const MIN_TOP_P: f64 = 0.0;
/// The highest `top_p`.
pub const MAX_TOP_P: f64 = 1.0;

/// A sampling parameter outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplingError {
    /// `temperature` outside 0-2 (or not a number).
    #[error(
        "temperature must be between {} and {}",
        MIN_TEMPERATURE,
        MAX_TEMPERATURE
    )]
    Temperature,
    /// `top_p` outside 0-1 (or not a number).
    #[error("top_p must be between {} and {}", MIN_TOP_P, MAX_TOP_P)]
    TopP,
}

impl SamplingError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Temperature => "temperature",
            Self::TopP => "top_p",
        }
    }
}

/// What a request asks for; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestedSettings {
    /// The model name.
    pub model: Option<String>,
    /// System instructions (an empty string counts as none).
    pub instructions: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<Temperature>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Upper bound on the answer's length in tokens.
    pub max_output_tokens: Option<u32>,
}

impl RequestedSettings {
    /// Checks the sampling ranges: `temperature` 0-2, `top_p` 0-1.
    pub fn new(
        model: Option<String>,
        instructions: Option<String>,
        temperature: Option<f64>,
        top_p: Option<f64>,
        max_output_tokens: Option<u32>,
    ) -> Result<Self, SamplingError> {
        let temperature = temperature
            .map(|t| Temperature::parse(t).map_err(|_| SamplingError::Temperature))
            .transpose()?;
        if top_p.is_some_and(|p| !(MIN_TOP_P..=MAX_TOP_P).contains(&p)) {
            return Err(SamplingError::TopP);
        }
        Ok(Self {
            model,
            instructions,
            temperature,
            top_p,
            max_output_tokens,
        })
    }
}

/// The settings a turn runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveSettings {
    /// The model name to route.
    pub model: String,
    /// Instructions put first in the context, if any.
    pub instructions: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Upper bound on the answer's length in tokens.
    pub max_output_tokens: Option<u32>,
}

/// The one place of the precedence rule: a value the request gives wins,
/// then the assistant's (the request's `assistant_id`, else the thread's
/// bound one), then the default. Empty instructions count as none.
pub fn effective_settings(
    requested: &RequestedSettings,
    model_override: Option<&str>,
    assistant: Option<&Assistant>,
) -> EffectiveSettings {
    let instructions = requested
        .instructions
        .clone()
        .filter(|i| !i.is_empty())
        .or_else(|| {
            assistant
                .and_then(|a| a.instructions.as_ref())
                .map(|i| i.as_str().to_string())
                .filter(|i| !i.is_empty())
        });
    EffectiveSettings {
        model: requested
            .model
            .clone()
            .or_else(|| model_override.map(str::to_string))
            .or_else(|| assistant.and_then(|a| a.model.clone()))
            .unwrap_or_else(|| DEFAULT_MODEL_NAME.to_string()),
        instructions,
        temperature: requested
            .temperature
            .or_else(|| assistant.and_then(|a| a.temperature))
            .map(Temperature::value),
        top_p: requested.top_p,
        max_output_tokens: requested.max_output_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock, AssistantName, AssistantSpec, Instructions, Metadata};

    fn assistant() -> Assistant {
        Assistant::new(
            crate::AssistantId::generate(),
            crate::OrganizationId::parse("org_a").unwrap(),
            crate::UserId::parse("usr_1").unwrap(),
            AssistantSpec {
                name: AssistantName::parse("helper").unwrap(),
                instructions: Some(Instructions::parse("Be brief.").unwrap()),
                model: Some("gpt-4.1".into()),
                temperature: Some(Temperature::parse(0.2).unwrap()),
                metadata: Metadata::default(),
            },
            clock::now(),
        )
    }

    #[test]
    fn the_request_wins_over_the_assistant_and_the_assistant_over_the_default() {
        let a = assistant();
        let none = effective_settings(&RequestedSettings::default(), None, Some(&a));
        assert_eq!(none.model, "gpt-4.1");
        assert_eq!(none.instructions.as_deref(), Some("Be brief."));
        assert_eq!(none.temperature, Some(0.2));
        let given = RequestedSettings::new(
            Some("other".into()),
            Some("Be long.".into()),
            Some(1.5),
            Some(0.5),
            Some(10),
        )
        .unwrap();
        let s = effective_settings(&given, None, Some(&a));
        assert_eq!(s.model, "other");
        assert_eq!(s.instructions.as_deref(), Some("Be long."));
        assert_eq!(s.temperature, Some(1.5));
        assert_eq!((s.top_p, s.max_output_tokens), (Some(0.5), Some(10)));
        let bare = effective_settings(&RequestedSettings::default(), None, None);
        assert_eq!(bare.model, DEFAULT_MODEL_NAME);
        assert_eq!(bare.instructions, None);
    }

    #[test]
    fn empty_request_instructions_fall_back_to_the_assistants() {
        let a = assistant();
        let r = RequestedSettings {
            instructions: Some(String::new()),
            ..RequestedSettings::default()
        };
        assert_eq!(
            effective_settings(&r, None, Some(&a))
                .instructions
                .as_deref(),
            Some("Be brief.")
        );
    }

    #[test]
    fn sampling_outside_its_range_is_refused() {
        let t = |t| RequestedSettings::new(None, None, Some(t), None, None);
        let p = |p| RequestedSettings::new(None, None, None, Some(p), None);
        assert_eq!(t(-5.0).unwrap_err(), SamplingError::Temperature);
        assert_eq!(t(2.01).unwrap_err(), SamplingError::Temperature);
        assert_eq!(t(f64::NAN).unwrap_err(), SamplingError::Temperature);
        assert!(t(0.0).is_ok() && t(2.0).is_ok());
        assert_eq!(p(1.5).unwrap_err(), SamplingError::TopP);
        assert_eq!(p(-0.1).unwrap_err(), SamplingError::TopP);
        assert_eq!(p(f64::NAN).unwrap_err(), SamplingError::TopP);
        assert!(p(0.0).is_ok() && p(1.0).is_ok());
    }
}
