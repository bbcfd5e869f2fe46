//! Configuration: defaults, then an optional TOML file, then `SKEIN_*`
//! environment variables (the environment wins).

use anyhow::{bail, Context};
use serde::Deserialize;
use skein_api::ratelimit::RateLimitSettings;
use skein_domain::Limits;
use skein_providers::RoutingConfig;
use std::path::{Path, PathBuf};

/// Default database: an SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/skein.db";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://...` (`SKEIN_DATABASE_URL`).
    pub database_url: String,
    /// Listen address (`SKEIN_BIND`); port 0 picks a free port.
    pub bind: String,
    /// Log filter, env_logger syntax (`SKEIN_LOG`, e.g. `info`, `skein=debug`).
    pub log: String,
    /// Create a default organization, user and key on an empty database
    /// (`SKEIN_BOOTSTRAP`).
    pub bootstrap: bool,
    /// Largest request body in bytes (`SKEIN_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Database connections in the pool (`SKEIN_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    /// HTTP worker threads (`SKEIN_WORKERS`; default: one per core).
    pub workers: Option<usize>,
    /// Domain limits (`[limits]` table in the file).
    pub limits: Limits,
    /// Model routing (`[routing]`: providers, model routes, default route).
    /// Empty: every model name goes to the built-in echo model.
    pub routing: RoutingConfig,
    /// Seconds a thread's busy lease lasts if its response never finishes
    /// (`SKEIN_LEASE_TTL_SECS`).
    pub lease_ttl_secs: u64,
    /// User tokens (`[jwt]`); off unless a secret or a public key is set.
    pub jwt: JwtConfig,
    /// Request budgets per API key and token user (`[rate_limit]`:
    /// `requests`, `window_secs`); off unless `requests` is above 0.
    pub rate_limit: RateLimitSettings,
}

/// User-token settings as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 shared secret, at least 32 bytes (`SKEIN_JWT_SECRET`).
    pub secret: Option<String>,
    /// PEM file with an RSA or EC public key for RS256/ES256
    /// (`SKEIN_JWT_PUBLIC_KEY_FILE`).
    pub public_key_file: Option<PathBuf>,
    /// Required issuer (`SKEIN_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// Required audience (`SKEIN_JWT_AUDIENCE`).
    pub audience: Option<String>,
}

impl JwtConfig {
    /// The settings the verifier takes, with the key file read.
    pub fn settings(&self) -> anyhow::Result<skein_api::tokens::JwtSettings> {
        let public_key_pem = match &self.public_key_file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the JWT public key file {}", path.display())
            })?),
            None => None,
        };
        Ok(skein_api::tokens::JwtSettings {
            secret: self.secret.clone(),
            public_key_pem,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            bind: DEFAULT_BIND.into(),
            log: "info".into(),
            bootstrap: true,
            max_body_bytes: skein_api::state::DEFAULT_MAX_BODY_BYTES,
            db_pool_size: 8,
            workers: None,
            limits: Limits::default(),
            routing: RoutingConfig::default(),
            lease_ttl_secs: 600,
            jwt: JwtConfig::default(),
            rate_limit: RateLimitSettings::default(),
        }
    }
}

fn parse_bool(name: &str, v: &str) -> anyhow::Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be true or false, got '{v}'"),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> anyhow::Result<T> {
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{name} must be a number, got '{v}'"))
}

impl Config {
    /// Loads the configuration: the file (from `--config` or `SKEIN_CONFIG`)
    /// if any, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let env = |k: &str| std::env::var(k).ok();
        let file: Option<PathBuf> = file
            .map(Path::to_path_buf)
            .or_else(|| env("SKEIN_CONFIG").map(PathBuf::from));
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read configuration file {}", path.display())
                })?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid configuration file {}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Overrides fields from environment variables, read through `env`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = env("SKEIN_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = env("SKEIN_BIND") {
            self.bind = v;
        }
        if let Some(v) = env("SKEIN_LOG") {
            self.log = v;
        }
        if let Some(v) = env("SKEIN_BOOTSTRAP") {
            self.bootstrap = parse_bool("SKEIN_BOOTSTRAP", &v)?;
        }
        if let Some(v) = env("SKEIN_MAX_BODY_BYTES") {
            self.max_body_bytes = parse_num("SKEIN_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = env("SKEIN_DB_POOL_SIZE") {
            self.db_pool_size = parse_num("SKEIN_DB_POOL_SIZE", &v)?;
        }
        if let Some(v) = env("SKEIN_WORKERS") {
            self.workers = Some(parse_num("SKEIN_WORKERS", &v)?);
        }
        if let Some(v) = env("SKEIN_JWT_SECRET") {
            self.jwt.secret = Some(v);
        }
        if let Some(v) = env("SKEIN_JWT_PUBLIC_KEY_FILE") {
            self.jwt.public_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("SKEIN_JWT_ISSUER") {
            self.jwt.issuer = Some(v);
        }
        if let Some(v) = env("SKEIN_JWT_AUDIENCE") {
            self.jwt.audience = Some(v);
        }
        if let Some(v) = env("SKEIN_LEASE_TTL_SECS") {
            self.lease_ttl_secs = parse_num("SKEIN_LEASE_TTL_SECS", &v)?;
        }
        if let Some(v) = env("SKEIN_RATE_LIMIT_REQUESTS") {
            self.rate_limit.requests = parse_num("SKEIN_RATE_LIMIT_REQUESTS", &v)?;
        }
        if let Some(v) = env("SKEIN_RATE_LIMIT_WINDOW_SECS") {
            self.rate_limit.window_secs = parse_num("SKEIN_RATE_LIMIT_WINDOW_SECS", &v)?;
        }
        Ok(())
    }

    /// Rejects combinations no single value can be checked for.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rate_limit.window_secs == 0 {
            bail!("rate_limit.window_secs (SKEIN_RATE_LIMIT_WINDOW_SECS) must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_sqlite_under_data_on_port_8080() {
        let c = Config::default();
        assert_eq!(c.database_url, "sqlite://data/skein.db");
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert!(c.bootstrap);
        assert_eq!(c.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut c: Config = toml::from_str(
            "database_url = \"postgres://db/skein\"\nbind = \"0.0.0.0:9000\"\n[limits]\nmax_pinned_threads = 5\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_pinned_threads, 5);
        assert_eq!(c.limits.max_title_chars, 200);
        c.apply_env(env(&[
            ("SKEIN_BIND", "127.0.0.1:0"),
            ("SKEIN_BOOTSTRAP", "false"),
        ]))
        .unwrap();
        assert_eq!(c.bind, "127.0.0.1:0");
        assert_eq!(c.database_url, "postgres://db/skein");
        assert!(!c.bootstrap);
    }

    #[test]
    fn routing_comes_from_the_file() {
        let c: Config = toml::from_str(
            r#"
[routing.providers.local]
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"

[[routing.models]]
pattern = "llama*"
provider = "local"
context_window = 8192

[routing.default]
provider = "local"
"#,
        )
        .unwrap();
        assert_eq!(c.routing.models.len(), 1);
        assert_eq!(c.routing.models[0].pattern, "llama*");
        assert!(c.routing.default.is_some());
        assert!(Config::default().routing.providers.is_empty());
    }

    #[test]
    fn rate_limits_are_off_by_default_and_configurable() {
        let c = Config::default();
        assert_eq!(c.rate_limit.requests, 0);
        assert_eq!(c.rate_limit.window_secs, 60);
        assert!(!c.rate_limit.is_enabled());

        let mut c: Config = toml::from_str("[rate_limit]\nrequests = 100\n").unwrap();
        assert_eq!(c.rate_limit.requests, 100);
        assert_eq!(c.rate_limit.window_secs, 60);
        c.apply_env(env(&[
            ("SKEIN_RATE_LIMIT_REQUESTS", "5"),
            ("SKEIN_RATE_LIMIT_WINDOW_SECS", "10"),
        ]))
        .unwrap();
        assert_eq!(c.rate_limit.requests, 5);
        assert_eq!(c.rate_limit.window_secs, 10);
        c.validate().unwrap();

        c.apply_env(env(&[("SKEIN_RATE_LIMIT_WINDOW_SECS", "0")]))
            .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("window_secs"));
        let err = Config::default()
            .apply_env(env(&[("SKEIN_RATE_LIMIT_REQUESTS", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("SKEIN_RATE_LIMIT_REQUESTS"));
        assert!(toml::from_str::<Config>("[rate_limit]\nrequest = 5\n").is_err());
    }

    #[test]
    fn bad_values_are_reported_with_their_name() {
        let err = Config::default()
            .apply_env(env(&[("SKEIN_BOOTSTRAP", "maybe")]))
            .unwrap_err();
        assert!(err.to_string().contains("SKEIN_BOOTSTRAP"));
        assert!(toml::from_str::<Config>("bnid = \"x\"").is_err());
    }
}
