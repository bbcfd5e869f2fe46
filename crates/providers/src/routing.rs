//! Routing model names to providers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::{ConfigError, EchoProvider, OpenAiProvider, OpenAiSettings, Provider};

/// Context window of a route that does not set one, in tokens.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 8192;

/// Name of the echo provider of [`Router::echo_default`].
pub const ECHO_PROVIDER_NAME: &str = "echo";

fn default_context_window() -> u32 {
    DEFAULT_CONTEXT_WINDOW
}

/// One configured provider: `kind = "echo"`, or `kind = "openai"` with the fields of
/// [`OpenAiSettings`]. Unknown keys are rejected for both kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ProviderConfigRepr")]
pub enum ProviderConfig {
    /// The built-in [`EchoProvider`].
    Echo,
    /// An OpenAI-compatible endpoint, see [`OpenAiProvider`].
    Openai(OpenAiSettings),
}

/// The serde shape of [`ProviderConfig`]. serde ignores extra keys next to the tag of a unit
/// variant even with `deny_unknown_fields`, so echo gets an empty settings struct that rejects
/// them.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum ProviderConfigRepr {
    Echo(EchoSettings),
    Openai(OpenAiSettings),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoSettings {}

impl From<ProviderConfigRepr> for ProviderConfig {
    fn from(repr: ProviderConfigRepr) -> Self {
        match repr {
            ProviderConfigRepr::Echo(EchoSettings {}) => Self::Echo,
            ProviderConfigRepr::Openai(settings) => Self::Openai(settings),
        }
    }
}

impl ProviderConfig {
    fn kind(&self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Openai(_) => "openai",
        }
    }
}

/// Which provider serves the model names matching a pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// An exact model name, or a glob where `*` matches any run of characters (`gpt-4*`, `*`).
    /// Case-sensitive. Ignored (and may be omitted) in the default route.
    #[serde(default)]
    pub pattern: String,
    /// Name of a provider of [`RoutingConfig::providers`].
    pub provider: String,
    /// Model name sent upstream; by default the requested name.
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// The model's context window in tokens (default 8192).
    #[serde(default = "default_context_window")]
    pub context_window: u32,
}

/// Providers and model routes, as read from the configuration file.
///
/// An empty configuration routes every model name to the echo provider
/// (see [`Router::echo_default`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Routes, tried in order; the first whose pattern matches wins.
    pub models: Vec<ModelRoute>,
    /// Route for model names no pattern matches; without it they are unknown models.
    pub default: Option<ModelRoute>,
}

impl RoutingConfig {
    fn is_empty(&self) -> bool {
        self.providers.is_empty() && self.models.is_empty() && self.default.is_none()
    }
}

/// Where a model name is served.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The provider's name in the configuration.
    pub provider_name: String,
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// The model name to put in [`crate::ModelRequest::model`].
    pub upstream_model: String,
    /// The model's context window in tokens.
    pub context_window: u32,
    /// The route that matched: its pattern, or `default` (a bounded label
    /// for metrics: never the requested name itself).
    pub route: String,
}

#[derive(Debug, Clone)]
struct NamedProvider {
    kind: &'static str,
    provider: Arc<dyn Provider>,
}

/// Resolves model names to providers; built once at start-up, cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    providers: Arc<BTreeMap<String, NamedProvider>>,
    routes: Arc<[ModelRoute]>,
    default: Option<Arc<ModelRoute>>,
}

fn check_route(
    route: &ModelRoute,
    pattern: &str,
    providers: &BTreeMap<String, NamedProvider>,
) -> Result<(), ConfigError> {
    if !providers.contains_key(&route.provider) {
        return Err(ConfigError::UnknownProvider {
            pattern: pattern.to_owned(),
            provider: route.provider.clone(),
        });
    }
    if route.context_window == 0 {
        return Err(ConfigError::ZeroContextWindow {
            pattern: pattern.to_owned(),
        });
    }
    Ok(())
}

impl Router {
    /// Builds every configured provider once (one HTTP client each) and checks the routes.
    ///
    /// An empty configuration gives [`Router::echo_default`].
    pub fn from_config(cfg: &RoutingConfig) -> Result<Router, ConfigError> {
        if cfg.is_empty() {
            return Ok(Self::echo_default());
        }
        let mut providers = BTreeMap::new();
        for (name, config) in &cfg.providers {
            let provider: Arc<dyn Provider> = match config {
                ProviderConfig::Echo => Arc::new(EchoProvider),
                ProviderConfig::Openai(settings) => {
                    Arc::new(OpenAiProvider::new(settings.clone()).map_err(|problem| {
                        ConfigError::Provider {
                            name: name.clone(),
                            problem: Box::new(problem),
                        }
                    })?)
                }
            };
            let kind = config.kind();
            providers.insert(name.clone(), NamedProvider { kind, provider });
        }
        for (index, route) in cfg.models.iter().enumerate() {
            if route.pattern.is_empty() {
                return Err(ConfigError::EmptyPattern { index });
            }
            check_route(route, &route.pattern, &providers)?;
        }
        if let Some(route) = &cfg.default {
            check_route(route, "(default)", &providers)?;
        }
        Ok(Router {
            providers: Arc::new(providers),
            routes: cfg.models.clone().into(),
            default: cfg.default.clone().map(Arc::new),
        })
    }

    /// The shipped default when nothing is configured: a provider `echo` ([`EchoProvider`]) and
    /// a default route to it with a context window of 8192 tokens, so every model name routes to
    /// echo.
    pub fn echo_default() -> Router {
        let mut providers = BTreeMap::new();
        providers.insert(
            ECHO_PROVIDER_NAME.to_owned(),
            NamedProvider {
                kind: "echo",
                provider: Arc::new(EchoProvider),
            },
        );
        Router {
            providers: Arc::new(providers),
            routes: Arc::new([]),
            default: Some(Arc::new(ModelRoute {
                pattern: "*".to_owned(),
                provider: ECHO_PROVIDER_NAME.to_owned(),
                upstream_model: None,
                context_window: DEFAULT_CONTEXT_WINDOW,
            })),
        }
    }

    /// This router with one more provider, `name`, serving the model names
    /// that match `pattern` (checked before the configured routes) with a
    /// context window of `context_window` tokens. For programs that embed
    /// Skein's crates with a provider of their own.
    pub fn with_route(
        &self,
        pattern: &str,
        name: &str,
        provider: Arc<dyn Provider>,
        context_window: u32,
    ) -> Router {
        let mut providers = (*self.providers).clone();
        providers.insert(
            name.to_owned(),
            NamedProvider {
                kind: "custom",
                provider,
            },
        );
        let mut routes = vec![ModelRoute {
            pattern: pattern.to_owned(),
            provider: name.to_owned(),
            upstream_model: None,
            context_window,
        }];
        routes.extend(self.routes.iter().cloned());
        Router {
            providers: Arc::new(providers),
            routes: routes.into(),
            default: self.default.clone(),
        }
    }

    /// The configured model names as `(name, provider)`, in routing order:
    /// each route's pattern as written (a glob such as `gpt-4*` stands for
    /// every name it matches), then `default` for the default route (the
    /// model of a request that names none), if there is one.
    pub fn listed(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .routes
            .iter()
            .map(|r| (r.pattern.clone(), r.provider.clone()))
            .collect();
        if let Some(d) = &self.default {
            out.push(("default".to_owned(), d.provider.clone()));
        }
        out
    }

    /// The provider for `model`: the first route whose pattern matches, else the default route,
    /// else `None` (an unknown model).
    pub fn resolve(&self, model: &str) -> Option<ResolvedModel> {
        let matched = self
            .routes
            .iter()
            .find(|route| glob_match(&route.pattern, model));
        let label = matched.map_or_else(|| "default".to_owned(), |r| r.pattern.clone());
        let route = matched.or(self.default.as_deref())?;
        let named = self.providers.get(&route.provider)?;
        Some(ResolvedModel {
            provider_name: route.provider.clone(),
            provider: Arc::clone(&named.provider),
            upstream_model: route
                .upstream_model
                .clone()
                .unwrap_or_else(|| model.to_owned()),
            context_window: route.context_window,
            route: label,
        })
    }

    /// One human-readable line per route, in matching order, for start-up logs, e.g.
    /// `gpt-4* -> openai provider 'local' (context 128000)`.
    pub fn describe(&self) -> Vec<String> {
        let line = |pattern: &str, route: &ModelRoute| {
            let kind = self
                .providers
                .get(&route.provider)
                .map_or("unknown", |named| named.kind);
            let upstream = route
                .upstream_model
                .as_ref()
                .map(|model| format!(" as model '{model}'"))
                .unwrap_or_default();
            format!(
                "{pattern} -> {kind} provider '{}'{upstream} (context {})",
                route.provider, route.context_window
            )
        };
        let mut lines: Vec<String> = self
            .routes
            .iter()
            .map(|route| line(&route.pattern, route))
            .collect();
        if let Some(route) = &self.default {
            lines.push(line("* (default)", route));
        }
        lines
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (also none) and
/// every other character matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Position of the last `*` seen and of the name when it was seen, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn a_pattern_without_stars_matches_only_the_exact_name() {
        assert!(glob_match("gpt-4", "gpt-4"));
        assert!(!glob_match("gpt-4", "gpt-4o"));
        assert!(!glob_match("gpt-4", "GPT-4"));
        assert!(!glob_match("gpt-4o", "gpt-4"));
    }

    #[test]
    fn a_star_matches_any_run_of_characters_including_none() {
        assert!(glob_match("gpt-4*", "gpt-4"));
        assert!(glob_match("gpt-4*", "gpt-4.1-mini"));
        assert!(!glob_match("gpt-4*", "gpt-3.5"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*-mini", "gpt-4.1-mini"));
        assert!(!glob_match("*-mini", "gpt-4.1-mini-2"));
        assert!(glob_match("llama*:*b", "llama3.1:70b"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("**x", "x"));
    }

    #[test]
    fn matching_works_on_characters_not_bytes() {
        assert!(glob_match("modèle-*", "modèle-α"));
        assert!(glob_match("m?d*", "m?dx"));
        assert!(!glob_match("m?d*", "mad"));
    }
}
