//! Configuration: defaults, then an optional TOML file, then `SKEIN_*`
//! environment variables (the environment wins).

use anyhow::{bail, Context};
use chrono::TimeDelta;
use serde::Deserialize;
use skein_api::ratelimit::RateLimitSettings;
use skein_domain::retention::{parse_duration, RetentionPolicy};
use skein_domain::Limits;
use skein_providers::RoutingConfig;
use std::path::{Path, PathBuf};

/// Default database: an SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/skein.db";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default time a client has to send its request head, in milliseconds.
pub const DEFAULT_CLIENT_REQUEST_TIMEOUT_MS: u64 = 5000;
/// The shortest such time: actix-http reads the time for this deadline
/// from a clock it advances every 500 ms, so a deadline can come up to
/// 500 ms early, and a shorter timeout could refuse a prompt client.
pub const MIN_CLIENT_REQUEST_TIMEOUT_MS: u64 = 1000;

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
    /// `text` (the default) or `json`: one JSON object per line
    /// (`SKEIN_LOG_FORMAT`).
    pub log_format: String,
    /// Create a default organization, user and key on an empty database
    /// (`SKEIN_BOOTSTRAP`).
    pub bootstrap: bool,
    /// Largest request body in bytes (`SKEIN_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Database connections in the pool (`SKEIN_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    /// HTTP worker threads (`SKEIN_WORKERS`; default: one per core).
    pub workers: Option<usize>,
    /// Milliseconds a client has to send its request line and headers
    /// before it is answered 408 and disconnected
    /// (`SKEIN_CLIENT_REQUEST_TIMEOUT_MS`).
    pub client_request_timeout_ms: u64,
    /// Domain limits (`[limits]` table in the file).
    pub limits: Limits,
    /// Model routing (`[routing]`: providers, model routes, default route).
    /// Empty: every model name goes to the built-in echo model.
    pub routing: RoutingConfig,
    /// Seconds a thread's busy lease lasts if its response never finishes
    /// (`SKEIN_LEASE_TTL_SECS`).
    pub lease_ttl_secs: u64,
    /// Store the events of thread responses so that clients can reconnect
    /// to a stream (`SKEIN_STORE_STREAM_EVENTS`, default true).
    pub store_stream_events: bool,
    /// Seconds a graceful stop (SIGTERM, SIGINT) lets running model
    /// responses finish before it cancels them, keeping what they generated
    /// (`SKEIN_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// User tokens (`[jwt]`); off unless a secret or a public key is set.
    pub jwt: JwtConfig,
    /// Request budgets per API key and token user (`[rate_limit]`:
    /// `requests`, `window_secs`); off unless `requests` is above 0.
    pub rate_limit: RateLimitSettings,
    /// Retention periods and the purge sweeper (`[retention]`).
    pub retention: RetentionConfig,
    /// Origins browsers may call Skein from (CORS), such as
    /// `https://app.example.com`; `*` for any; empty (the default): CORS is
    /// off (`SKEIN_CORS_ORIGINS`, comma separated).
    pub cors_origins: Vec<String>,
}

/// Retention settings as configured (`[retention]`), durations written like
/// `90d`, `12h`, `10m`, `2s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// A thread without activity this long expires, archived threads
    /// exempt (`SKEIN_THREAD_INACTIVITY_TTL`, default 90d).
    #[serde(deserialize_with = "skein_domain::retention::duration")]
    pub thread_inactivity_ttl: TimeDelta,
    /// A thread this old expires (`SKEIN_THREAD_MAX_AGE`, default 365d).
    #[serde(deserialize_with = "skein_domain::retention::duration")]
    pub thread_max_age: TimeDelta,
    /// Deleted and expired threads are purged this long after
    /// (`SKEIN_DELETED_GRACE`, default 30d).
    #[serde(deserialize_with = "skein_domain::retention::duration")]
    pub deleted_grace: TimeDelta,
    /// Responses are kept this long (`SKEIN_RESPONSE_TTL`, default 24h).
    #[serde(deserialize_with = "skein_domain::retention::duration")]
    pub response_ttl: TimeDelta,
    /// Incognito threads are deleted for good this long after their
    /// creation, without a grace period (`SKEIN_INCOGNITO_TTL`, default 24h).
    #[serde(deserialize_with = "skein_domain::retention::duration")]
    pub incognito_ttl: TimeDelta,
    /// How often the sweeper runs (`SKEIN_SWEEP_INTERVAL`, default 10m);
    /// `0s` turns the background sweeper off (`skein purge` still works).
    #[serde(deserialize_with = "skein_domain::retention::duration")]
    pub sweep_interval: TimeDelta,
    /// Threads (and responses) deleted per short transaction
    /// (`SKEIN_SWEEP_BATCH`, default 500).
    pub sweep_batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let p = RetentionPolicy::default();
        Self {
            thread_inactivity_ttl: p.thread_inactivity_ttl,
            thread_max_age: p.thread_max_age,
            deleted_grace: p.deleted_grace,
            response_ttl: p.response_ttl,
            incognito_ttl: p.incognito_ttl,
            sweep_interval: TimeDelta::minutes(10),
            sweep_batch: 500,
        }
    }
}

impl RetentionConfig {
    /// The retention periods.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            thread_inactivity_ttl: self.thread_inactivity_ttl,
            thread_max_age: self.thread_max_age,
            deleted_grace: self.deleted_grace,
            response_ttl: self.response_ttl,
            incognito_ttl: self.incognito_ttl,
        }
    }

    /// The sweep interval, or `None` when the sweeper is off.
    pub fn sweep_every(&self) -> Option<std::time::Duration> {
        self.sweep_interval.to_std().ok().filter(|d| !d.is_zero())
    }
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
            log_format: "text".into(),
            bootstrap: true,
            max_body_bytes: skein_api::state::DEFAULT_MAX_BODY_BYTES,
            db_pool_size: 16,
            workers: None,
            client_request_timeout_ms: DEFAULT_CLIENT_REQUEST_TIMEOUT_MS,
            limits: Limits::default(),
            routing: RoutingConfig::default(),
            lease_ttl_secs: 600,
            store_stream_events: true,
            shutdown_grace_secs: 10,
            jwt: JwtConfig::default(),
            rate_limit: RateLimitSettings::default(),
            retention: RetentionConfig::default(),
            cors_origins: Vec::new(),
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

fn parse_dur(name: &str, v: &str) -> anyhow::Result<TimeDelta> {
    parse_duration(v).map_err(|e| anyhow::anyhow!("{name}: {e}"))
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
        if let Some(v) = env("SKEIN_LOG_FORMAT") {
            self.log_format = v;
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
        if let Some(v) = env("SKEIN_CLIENT_REQUEST_TIMEOUT_MS") {
            self.client_request_timeout_ms = parse_num("SKEIN_CLIENT_REQUEST_TIMEOUT_MS", &v)?;
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
        if let Some(v) = env("SKEIN_STORE_STREAM_EVENTS") {
            self.store_stream_events = parse_bool("SKEIN_STORE_STREAM_EVENTS", &v)?;
        }
        if let Some(v) = env("SKEIN_SHUTDOWN_GRACE_SECS") {
            self.shutdown_grace_secs = parse_num("SKEIN_SHUTDOWN_GRACE_SECS", &v)?;
        }
        if let Some(v) = env("SKEIN_RATE_LIMIT_REQUESTS") {
            self.rate_limit.requests = parse_num("SKEIN_RATE_LIMIT_REQUESTS", &v)?;
        }
        if let Some(v) = env("SKEIN_RATE_LIMIT_WINDOW_SECS") {
            self.rate_limit.window_secs = parse_num("SKEIN_RATE_LIMIT_WINDOW_SECS", &v)?;
        }
        let r = &mut self.retention;
        for (name, field) in [
            ("SKEIN_THREAD_INACTIVITY_TTL", &mut r.thread_inactivity_ttl),
            ("SKEIN_THREAD_MAX_AGE", &mut r.thread_max_age),
            ("SKEIN_DELETED_GRACE", &mut r.deleted_grace),
            ("SKEIN_RESPONSE_TTL", &mut r.response_ttl),
            ("SKEIN_INCOGNITO_TTL", &mut r.incognito_ttl),
            ("SKEIN_SWEEP_INTERVAL", &mut r.sweep_interval),
        ] {
            if let Some(v) = env(name) {
                *field = parse_dur(name, &v)?;
            }
        }
        if let Some(v) = env("SKEIN_CORS_ORIGINS") {
            self.cors_origins = v
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = env("SKEIN_SWEEP_BATCH") {
            r.sweep_batch = parse_num("SKEIN_SWEEP_BATCH", &v)?;
        }
        Ok(())
    }

    /// Rejects values the server cannot run with (instead of a panic at
    /// start or date arithmetic that overflows later), and combinations no
    /// single value can be checked for.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.workers == Some(0) {
            bail!("workers (SKEIN_WORKERS) must be at least 1 (leave it out for one per core)");
        }
        if !(1..=1024).contains(&self.db_pool_size) {
            bail!("db_pool_size (SKEIN_DB_POOL_SIZE) must be between 1 and 1024");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes (SKEIN_MAX_BODY_BYTES) must be at least 1024");
        }
        if !(1..=7 * 86_400).contains(&self.lease_ttl_secs) {
            bail!("lease_ttl_secs (SKEIN_LEASE_TTL_SECS) must be between 1 and 604800 (7 days)");
        }
        // Periods are subtracted from and added to dates: a century at most.
        let century = TimeDelta::days(36_500);
        let r = &self.retention;
        for (name, value, may_be_zero) in [
            (
                "thread_inactivity_ttl (SKEIN_THREAD_INACTIVITY_TTL)",
                r.thread_inactivity_ttl,
                false,
            ),
            (
                "thread_max_age (SKEIN_THREAD_MAX_AGE)",
                r.thread_max_age,
                false,
            ),
            ("deleted_grace (SKEIN_DELETED_GRACE)", r.deleted_grace, true),
            ("response_ttl (SKEIN_RESPONSE_TTL)", r.response_ttl, false),
            (
                "incognito_ttl (SKEIN_INCOGNITO_TTL)",
                r.incognito_ttl,
                false,
            ),
            (
                "sweep_interval (SKEIN_SWEEP_INTERVAL)",
                r.sweep_interval,
                true,
            ),
        ] {
            if value > century {
                bail!("retention.{name} must be at most 36500d");
            }
            if !may_be_zero && value <= TimeDelta::zero() {
                bail!("retention.{name} must be longer than 0s");
            }
        }
        if self.rate_limit.window_secs == 0 {
            bail!("rate_limit.window_secs (SKEIN_RATE_LIMIT_WINDOW_SECS) must be at least 1");
        }
        if self.retention.sweep_batch == 0 {
            bail!("retention.sweep_batch (SKEIN_SWEEP_BATCH) must be at least 1");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            anyhow::bail!(
                "log_format (SKEIN_LOG_FORMAT) must be text or json, not '{}'",
                self.log_format
            );
        }
        for origin in &self.cors_origins {
            let valid = origin == "*"
                || origin.split_once("://").is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https")
                        && !rest.is_empty()
                        && !rest.contains('/')
                        && !rest.contains('*')
                });
            if !valid {
                bail!(
                    "cors_origins (SKEIN_CORS_ORIGINS): '{origin}' is not an origin: write \
                     scheme://host[:port] (no path), or * for any"
                );
            }
        }
        if self.client_request_timeout_ms < MIN_CLIENT_REQUEST_TIMEOUT_MS {
            bail!(
                "client_request_timeout_ms (SKEIN_CLIENT_REQUEST_TIMEOUT_MS) must be at least \
                 {MIN_CLIENT_REQUEST_TIMEOUT_MS}"
            );
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
    fn cors_origins_come_comma_separated_and_must_be_origins() {
        let mut c = Config::default();
        c.apply_env(env(&[(
            "SKEIN_CORS_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )]))
        .unwrap();
        assert_eq!(
            c.cors_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(c.validate().is_ok());
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x",
            "https://*.x",
        ] {
            let mut c = Config::default();
            c.apply_env(env(&[("SKEIN_CORS_ORIGINS", bad)])).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("SKEIN_CORS_ORIGINS"), "{bad}: {e}");
        }
    }

    #[test]
    fn values_the_server_cannot_run_with_are_refused_by_name() {
        for (name, value) in [
            ("SKEIN_WORKERS", "0"),
            ("SKEIN_DB_POOL_SIZE", "0"),
            ("SKEIN_MAX_BODY_BYTES", "10"),
            ("SKEIN_LEASE_TTL_SECS", "0"),
            ("SKEIN_THREAD_MAX_AGE", "99999999d"),
            ("SKEIN_RESPONSE_TTL", "0s"),
            ("SKEIN_SWEEP_INTERVAL", "40000d"),
        ] {
            let mut c = Config::default();
            c.apply_env(env(&[(name, value)])).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{name}={value}: {e}");
        }
        let mut c = Config::default();
        c.apply_env(env(&[
            ("SKEIN_DELETED_GRACE", "0s"),
            ("SKEIN_WORKERS", "1"),
        ]))
        .unwrap();
        assert!(c.validate().is_ok(), "no grace and one worker are fine");
    }

    const EXAMPLE: &str = include_str!("../../../skein.example.toml");

    #[test]
    fn the_example_file_holds_every_default_and_its_routing_example_parses() {
        let example: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(format!("{example:?}"), format!("{:?}", Config::default()));
        // The commented routing example, switched on, is a valid routing table.
        let routing: String = EXAMPLE
            .split("# Model routing")
            .nth(1)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        let with_routes: Config = toml::from_str(&routing).unwrap();
        assert_eq!(with_routes.routing.providers.len(), 2);
        assert_eq!(with_routes.routing.models.len(), 1);
        assert!(with_routes.routing.default.is_some());
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
    fn retention_defaults_file_and_environment() {
        let c = Config::default();
        assert_eq!(c.retention.policy(), RetentionPolicy::default());
        assert_eq!(c.retention.sweep_interval, TimeDelta::minutes(10));
        assert_eq!(c.retention.sweep_batch, 500);
        assert_eq!(
            c.retention.sweep_every(),
            Some(std::time::Duration::from_secs(600))
        );

        let mut c: Config = toml::from_str(
            "[retention]\nthread_inactivity_ttl = \"30d\"\nresponse_ttl = \"12h\"\nsweep_interval = \"2s\"\nsweep_batch = 50\n",
        )
        .unwrap();
        let p = c.retention.policy();
        assert_eq!(p.thread_inactivity_ttl, TimeDelta::days(30));
        assert_eq!(p.response_ttl, TimeDelta::hours(12));
        assert_eq!(p.thread_max_age, TimeDelta::days(365));
        assert_eq!(c.retention.sweep_interval, TimeDelta::seconds(2));
        assert_eq!(c.retention.sweep_batch, 50);

        c.apply_env(env(&[
            ("SKEIN_THREAD_INACTIVITY_TTL", "7d"),
            ("SKEIN_THREAD_MAX_AGE", "100d"),
            ("SKEIN_DELETED_GRACE", "1d"),
            ("SKEIN_RESPONSE_TTL", "2h"),
            ("SKEIN_SWEEP_INTERVAL", "0s"),
            ("SKEIN_SWEEP_BATCH", "10"),
        ]))
        .unwrap();
        let p = c.retention.policy();
        assert_eq!(p.thread_inactivity_ttl, TimeDelta::days(7));
        assert_eq!(p.thread_max_age, TimeDelta::days(100));
        assert_eq!(p.deleted_grace, TimeDelta::days(1));
        assert_eq!(p.response_ttl, TimeDelta::hours(2));
        assert_eq!(c.retention.sweep_every(), None);
        assert_eq!(c.retention.sweep_batch, 10);
        c.validate().unwrap();
    }

    #[test]
    fn bad_retention_values_name_their_variable_or_key() {
        for name in [
            "SKEIN_THREAD_INACTIVITY_TTL",
            "SKEIN_THREAD_MAX_AGE",
            "SKEIN_DELETED_GRACE",
            "SKEIN_RESPONSE_TTL",
            "SKEIN_SWEEP_INTERVAL",
        ] {
            let err = Config::default()
                .apply_env(env(&[(name, "3 weeks")]))
                .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = toml::from_str::<Config>("[retention]\ndeleted_grace = \"30x\"\n").unwrap_err();
        assert!(err.to_string().contains("deleted_grace"), "{err}");
        assert!(toml::from_str::<Config>("[retention]\ngrace = \"30d\"\n").is_err());
        let mut c = Config::default();
        c.apply_env(env(&[("SKEIN_SWEEP_BATCH", "0")])).unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sweep_batch"));
    }

    #[test]
    fn the_client_request_timeout_defaults_to_5_s_and_is_configurable() {
        assert_eq!(Config::default().client_request_timeout_ms, 5000);
        let mut c: Config = toml::from_str("client_request_timeout_ms = 2500\n").unwrap();
        assert_eq!(c.client_request_timeout_ms, 2500);
        c.apply_env(env(&[("SKEIN_CLIENT_REQUEST_TIMEOUT_MS", "1000")]))
            .unwrap();
        assert_eq!(c.client_request_timeout_ms, 1000);
        c.validate().unwrap();
        c.apply_env(env(&[("SKEIN_CLIENT_REQUEST_TIMEOUT_MS", "999")]))
            .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("SKEIN_CLIENT_REQUEST_TIMEOUT_MS"));
        let err = Config::default()
            .apply_env(env(&[("SKEIN_CLIENT_REQUEST_TIMEOUT_MS", "5s")]))
            .unwrap_err();
        assert!(err.to_string().contains("SKEIN_CLIENT_REQUEST_TIMEOUT_MS"));
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
