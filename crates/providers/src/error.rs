//! Error types of the crate.

/// Why a model call failed. The API maps [`ProviderError::Upstream`] to 502 `UPSTREAM_ERROR` and
/// [`ProviderError::Timeout`] to 504 `UPSTREAM_TIMEOUT`. Messages never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The upstream failed: unreachable, non-2xx status, malformed or truncated answer.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// The upstream did not answer (or stopped streaming) within the configured timeout.
    #[error("upstream timed out: {0}")]
    Timeout(String),
}

/// Why a provider or routing configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A route names a provider that is not configured.
    #[error("model route '{pattern}' refers to unknown provider '{provider}'")]
    UnknownProvider {
        /// The route's pattern (`(default)` for the default route).
        pattern: String,
        /// The provider name that was not found.
        provider: String,
    },
    /// A model route has an empty pattern (only the default route may omit it).
    #[error("model route #{index} has an empty pattern")]
    EmptyPattern {
        /// Zero-based position of the route in `models`.
        index: usize,
    },
    /// A route declares a context window of zero tokens.
    #[error("model route '{pattern}' has a context window of 0 tokens")]
    ZeroContextWindow {
        /// The route's pattern (`(default)` for the default route).
        pattern: String,
    },
    /// A configured provider could not be built.
    #[error("provider '{name}': {problem}")]
    Provider {
        /// The provider's name in the configuration.
        name: String,
        /// What is wrong with it.
        problem: Box<ConfigError>,
    },
    /// The environment variable that should hold the API key is not set (or is empty).
    #[error("environment variable '{var}' (api_key_env) is not set or empty")]
    MissingApiKey {
        /// The variable's name.
        var: String,
    },
    /// The API key cannot be used (not unicode, or not valid in an HTTP header).
    #[error("environment variable '{var}' (api_key_env) does not hold a usable API key: {reason}")]
    InvalidApiKey {
        /// The variable's name.
        var: String,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// `base_url` is not an absolute http(s) URL.
    #[error("invalid base_url '{url}': {reason}")]
    InvalidBaseUrl {
        /// The configured value.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A timeout is not a positive, finite number of seconds.
    #[error("invalid {field} {value}: must be a positive number of seconds")]
    InvalidTimeout {
        /// The setting's name.
        field: &'static str,
        /// The configured value.
        value: f64,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}
