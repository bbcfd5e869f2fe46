//! `skein`: the Skein server and its operator commands.

mod config;
mod http;
mod logging;
mod transfer;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::Config;
use skein_api::{AppState, Metrics};
use skein_domain::retention::{Clock, RetentionPolicy};
use skein_domain::{clock, OrganizationId, UserId};
use skein_persistence::connection::redact;
use skein_persistence::ratelimits;
use skein_persistence::retention::{self, PurgeCounts};
use skein_persistence::{keys, migrations, tenancy, DbConnection, PoolOptions, Store};
use skein_providers::Router;
use std::path::PathBuf;

/// jemalloc, one arena, also behind the C libraries' `malloc` (settings and
/// why: `.cargo/config.toml`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Skein: a self-hosted server for stateful LLM conversation threads.
#[derive(Debug, Parser)]
#[command(name = "skein", version, about)]
struct Cli {
    /// TOML configuration file (also `SKEIN_CONFIG`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage organizations.
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage which users belong to which organizations.
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Permanently delete what retention says is due now: deleted and
    /// expired threads past their grace (with their messages and
    /// responses) and expired responses.
    Purge {
        /// Only print how much would be purged; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write an organization's live threads with their messages as NDJSON,
    /// one thread per line (to stdout unless --output names a file).
    Export {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Only this user's threads (default: every user's).
        #[arg(long)]
        user: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Store the threads of an export (`-`: stdin), creating their
    /// organizations, users and memberships if missing; a thread id already
    /// taken in its organization is skipped unless --replace.
    Import {
        /// The NDJSON file of `skein export` (or `GET /v1/threads/export`), `-` for stdin.
        file: String,
        /// Replace threads whose id is taken (their messages and row go first).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check the configuration (file, environment, routing, tokens, database URL, address)
    /// and print it as it applies, secrets masked; exit 1 on the first problems.
    Check,
}

#[derive(Debug, Subcommand)]
enum OrgsCommand {
    /// Create an organization with this id (`org_...` or any 1-128 of [A-Za-z0-9_.:-]).
    Create {
        /// Organization id.
        org: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user with this id (the `sub` of its tokens).
    Create {
        /// User id.
        user: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MembersCommand {
    /// Make USER a member of ORG (both must exist).
    Add {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// User id.
        #[arg(long)]
        user: String,
    },
    /// Remove USER from ORG; takes effect on the next request.
    Remove {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// User id.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for USER in ORG (both created if missing); prints it once.
    Create {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// User id.
        #[arg(long)]
        user: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (id, prefix, owner, organization, created, last used); never secrets.
    List,
    /// Revoke a key by id; it stops working on the next request.
    Revoke {
        /// The key id (`key_...`).
        key_id: String,
    },
}

/// `println!` for the commands' output: a reader that stops early (`skein
/// openapi | head`) ends the command quietly instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(e.into());
        }
    }};
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    logging::init(
        &std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.clone()),
        config.log_format == "json",
    )?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            say!("{}", skein_api::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Migrate => {
            let mut conn = open_direct(&config)?;
            let applied = migrations::run_pending(&mut conn)?;
            if applied.is_empty() {
                say!("database is up to date");
            } else {
                say!("applied migrations: {}", applied.join(", "));
            }
            Ok(())
        }
        Command::Keys { command } => keys_command(&config, command),
        Command::Orgs { command } => tenancy_command(&config, TenancyCommand::Orgs(command)),
        Command::Users { command } => tenancy_command(&config, TenancyCommand::Users(command)),
        Command::Members { command } => tenancy_command(&config, TenancyCommand::Members(command)),
        Command::Purge { dry_run } => purge_command(&config, dry_run),
        Command::Export { org, user, output } => {
            transfer::export(&config, &org, user.as_deref(), output.as_deref())
        }
        Command::Import { file, replace } => transfer::import(&config, &file, replace),
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(&config),
        Command::Serve => serve(config),
    }
}

/// `skein config check`: what `serve` would refuse at start, without a
/// database connection or a port; then the effective settings.
fn config_check(config: &Config) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if let Err(e) = skein_persistence::connection::DatabaseUrl::parse(&config.database_url) {
        problems.push(format!("database_url: {e}"));
    }
    if let Err(e) = Router::from_config(&config.routing) {
        problems.push(format!("[routing]: {e:#}"));
    }
    match config.jwt.settings() {
        Ok(settings) => {
            if let Err(e) = skein_api::tokens::TokenVerifier::from_settings(&settings) {
                problems.push(format!("[jwt]: {e}"));
            }
        }
        Err(e) => problems.push(format!("[jwt]: {e:#}")),
    }
    if std::net::ToSocketAddrs::to_socket_addrs(config.bind.as_str()).is_err() {
        problems.push(format!(
            "bind: '{}' is not an address (HOST:PORT)",
            config.bind
        ));
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "the configuration has problems:\n  {}",
            problems.join("\n  ")
        );
    }
    let r = &config.retention;
    let masked = |set: bool| if set { "\"***\"" } else { "(not set)" };
    say!("# the configuration as it applies (file, then SKEIN_* variables); secrets masked");
    say!("database_url = {:?}", redact(&config.database_url));
    say!("bind = {:?}", config.bind);
    say!("log = {:?}", config.log);
    say!("log_format = {:?}", config.log_format);
    say!("bootstrap = {}", config.bootstrap);
    say!("max_body_bytes = {}", config.max_body_bytes);
    say!("db_pool_size = {}", config.db_pool_size);
    match config.workers {
        Some(n) => say!("workers = {n}"),
        None => say!("workers = (one per core)"),
    }
    say!(
        "client_request_timeout_ms = {}",
        config.client_request_timeout_ms
    );
    say!("lease_ttl_secs = {}", config.lease_ttl_secs);
    say!("store_stream_events = {}", config.store_stream_events);
    say!("shutdown_grace_secs = {}", config.shutdown_grace_secs);
    say!("cors_origins = {:?}", config.cors_origins);
    say!(
        "[limits] max_title_chars = {}, max_pinned_threads = {}, max_messages_per_thread = {}",
        config.limits.max_title_chars,
        config.limits.max_pinned_threads,
        config.limits.max_messages_per_thread
    );
    say!(
        "[retention] thread_inactivity_ttl = {}s, thread_max_age = {}s, deleted_grace = {}s, \
          response_ttl = {}s, incognito_ttl = {}s, sweep_interval = {}s, sweep_batch = {}",
        r.thread_inactivity_ttl.num_seconds(),
        r.thread_max_age.num_seconds(),
        r.deleted_grace.num_seconds(),
        r.response_ttl.num_seconds(),
        r.incognito_ttl.num_seconds(),
        r.sweep_interval.num_seconds(),
        r.sweep_batch
    );
    say!(
        "[rate_limit] requests = {}, window_secs = {}",
        config.rate_limit.requests,
        config.rate_limit.window_secs
    );
    say!(
        "[jwt] secret = {}, public_key_file = {:?}, issuer = {:?}, audience = {:?}",
        masked(config.jwt.secret.is_some()),
        config.jwt.public_key_file,
        config.jwt.issuer,
        config.jwt.audience
    );
    let routes = Router::from_config(&config.routing)?;
    for line in routes.describe() {
        say!("[routing] {line}");
    }
    say!("# ok");
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    log::info!("connecting to {}", redact(&config.database_url));
    Store::open(
        &config.database_url,
        PoolOptions {
            max_size: config.db_pool_size,
            ..PoolOptions::default()
        },
    )
    .with_context(|| format!("opening database {}", redact(&config.database_url)))
}

/// One connection without a pool, for one-shot commands: a pool keeps
/// background threads that may still be opening a connection (inside libpq)
/// when a short command exits.
fn open_direct(config: &Config) -> anyhow::Result<DbConnection> {
    log::info!("connecting to {}", redact(&config.database_url));
    skein_persistence::open_direct(&config.database_url, PoolOptions::default().busy_timeout)
        .with_context(|| format!("opening database {}", redact(&config.database_url)))
}

fn parse_ids(org: &str, user: &str) -> anyhow::Result<(OrganizationId, UserId)> {
    let org = OrganizationId::parse(org).context("--org")?;
    let user = UserId::parse(user).context("--user")?;
    Ok((org, user))
}

fn keys_command(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let mut conn = open_direct(config)?;
    migrations::run_pending(&mut conn)?;
    match command {
        KeysCommand::Create { org, user, name } => {
            let (org, user) = parse_ids(&org, &user)?;
            let now = clock::now();
            tenancy::ensure_organization(&mut conn, &org, org.as_str(), now)?;
            tenancy::ensure_user(&mut conn, &user, user.as_str(), now)?;
            tenancy::ensure_membership(&mut conn, &org, &user, now)?;
            let key = keys::create(&mut conn, &org, &user, name.as_deref(), now)?;
            say!("key id:  {}", key.id);
            say!("api key: {}", key.secret);
            say!("(the key is shown only once; store it now)");
        }
        KeysCommand::List => {
            say!(
                "{:<30} {:<16} {:<30} {:<30} {:<24} {:<24} revoked",
                "id",
                "prefix",
                "user",
                "organization",
                "created",
                "last used"
            );
            for k in keys::list(&mut conn)? {
                let t = |v: Option<chrono::NaiveDateTime>| {
                    v.map(|v| skein_api::dto::timestamp(v.and_utc()))
                        .unwrap_or_else(|| "-".into())
                };
                say!(
                    "{:<30} sk_{:<13} {:<30} {:<30} {:<24} {:<24} {}",
                    k.id,
                    k.prefix,
                    k.user_id,
                    k.organization_id,
                    t(Some(k.created_at)),
                    t(k.last_used_at),
                    t(k.revoked_at)
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            keys::revoke(&mut conn, &key_id, clock::now())
                .with_context(|| format!("no active key with id {key_id}"))?;
            say!("revoked {key_id}");
        }
    }
    Ok(())
}

enum TenancyCommand {
    Orgs(OrgsCommand),
    Users(UsersCommand),
    Members(MembersCommand),
}

fn tenancy_command(config: &Config, command: TenancyCommand) -> anyhow::Result<()> {
    let mut conn = open_direct(config)?;
    migrations::run_pending(&mut conn)?;
    let now = clock::now();
    match command {
        TenancyCommand::Orgs(OrgsCommand::Create { org, name }) => {
            let id = OrganizationId::parse(org).context("organization id")?;
            let created = tenancy::ensure_organization(
                &mut conn,
                &id,
                name.as_deref().unwrap_or(id.as_str()),
                now,
            )?;
            say!(
                "{} organization {id}",
                if created {
                    "created"
                } else {
                    "already exists:"
                }
            );
        }
        TenancyCommand::Users(UsersCommand::Create { user, name }) => {
            let id = UserId::parse(user).context("user id")?;
            let created =
                tenancy::ensure_user(&mut conn, &id, name.as_deref().unwrap_or(id.as_str()), now)?;
            say!(
                "{} user {id}",
                if created {
                    "created"
                } else {
                    "already exists:"
                }
            );
        }
        TenancyCommand::Members(MembersCommand::Add { org, user }) => {
            let (org, user) = parse_ids(&org, &user)?;
            if !tenancy::organization_exists(&mut conn, &org)? {
                anyhow::bail!("no organization {org}: create it with `skein orgs create {org}`");
            }
            if !tenancy::user_exists(&mut conn, &user)? {
                anyhow::bail!("no user {user}: create it with `skein users create {user}`");
            }
            let added = tenancy::ensure_membership(&mut conn, &org, &user, now)?;
            say!(
                "{user} {} member of {org}",
                if added { "is now a" } else { "was already a" }
            );
        }
        TenancyCommand::Members(MembersCommand::Remove { org, user }) => {
            let (org, user) = parse_ids(&org, &user)?;
            if !tenancy::remove_membership(&mut conn, &org, &user)? {
                anyhow::bail!("{user} is not a member of {org}");
            }
            say!("removed {user} from {org}");
        }
    }
    Ok(())
}

/// `90d`, `12h`, `10m` or `2s`: the largest unit that divides exactly.
fn short_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    [(86_400, "d"), (3_600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| secs != 0 && secs % unit == 0)
        .map_or_else(
            || format!("{secs}s"),
            |(unit, name)| format!("{}{name}", secs / unit),
        )
}

fn purge_command(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let mut conn = open_direct(config)?;
    migrations::run_pending(&mut conn)?;
    let policy = config.retention.policy();
    let now = Clock::system().now();
    if dry_run {
        let due = retention::count_purgeable(&mut conn, &policy, now)?;
        say!("would purge: {due}");
    } else {
        let done = retention::purge_all(&mut conn, &policy, now, config.retention.sweep_batch)?;
        ratelimits::prune(&mut conn, std::time::Duration::ZERO)?;
        say!("purged: {done}");
    }
    Ok(())
}

/// The retention sweeper: every `every`, purges in batches (one short
/// transaction each) until a batch finds nothing, counting what went, then
/// drops the rate-limit budgets that are whole again. On PostgreSQL each
/// batch holds the sweeper's advisory lock: when another replica holds it,
/// this one leaves the round to it.
async fn sweep(
    store: Store,
    policy: RetentionPolicy,
    clock: Clock,
    metrics: actix_web::web::Data<Metrics>,
    every: std::time::Duration,
    batch: u32,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = std::time::Instant::now();
        let mut total = PurgeCounts::default();
        let mut finished = false;
        let mut outcome = "idle";
        loop {
            let now = clock.now();
            let result = store
                .run(move |c| retention::sweep_batch(c, &policy, now, batch))
                .await;
            match result {
                Ok(None) => {
                    log::debug!("retention sweep skipped: another replica is sweeping");
                    outcome = "skipped";
                    break;
                }
                Ok(Some(done)) if done.is_empty() => {
                    finished = true;
                    break;
                }
                Ok(Some(done)) => {
                    metrics.record_purged(&done);
                    outcome = "purged";
                    total += done;
                }
                Err(e) => {
                    log::warn!("retention sweep stopped: {e:#}");
                    outcome = "failed";
                    break;
                }
            }
        }
        metrics.record_sweep(outcome);
        if !total.is_empty() {
            log::info!(
                "retention sweep purged {total} in {} ms",
                started.elapsed().as_millis()
            );
        }
        if finished {
            let offset = clock.offset().to_std().unwrap_or_default();
            match store.run(move |c| ratelimits::prune(c, offset)).await {
                Ok(0) => {}
                Ok(n) => log::debug!("dropped {n} rate-limit budgets that are whole again"),
                Err(e) => log::warn!("pruning rate-limit budgets failed: {e:#}"),
            }
        }
    }
}

/// On an empty database: a default organization, user and key, printed once.
fn bootstrap(store: &Store, base_url: &str) -> anyhow::Result<()> {
    let mut conn = store.conn()?;
    if !tenancy::is_empty(&mut conn)? {
        return Ok(());
    }
    let now = clock::now();
    let org = OrganizationId::generate();
    let user = UserId::generate();
    tenancy::ensure_organization(&mut conn, &org, "Default organization", now)?;
    tenancy::ensure_user(&mut conn, &user, "Default user", now)?;
    tenancy::ensure_membership(&mut conn, &org, &user, now)?;
    let key = keys::create(&mut conn, &org, &user, Some("bootstrap"), now)?;
    println!();
    println!("First start on an empty database: created a default organization, user and API key.");
    println!("  organization: {org}");
    println!("  user:         {user}");
    println!("  API key:      {}", key.secret);
    println!("The key is shown only this once. Store it now, for example:");
    println!();
    println!("  export SKEIN_API_KEY={}", key.secret);
    println!("  curl -s -X POST {base_url}/v1/threads \\");
    println!("    -H \"X-API-Key: $SKEIN_API_KEY\" -H 'Content-Type: application/json' \\");
    println!("    -d '{{\"title\": \"Hello Skein\"}}'");
    println!();
    Ok(())
}

/// How long a graceful stop waits for the responses it cancelled to save
/// what they generated.
const SHUTDOWN_CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGTERM and SIGINT, both answered with a graceful stop.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (from here on the signals no longer kill the
    /// process outright).
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either; returns which one arrived.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config)?;
    let applied = store.migrate()?;
    if !applied.is_empty() {
        log::info!("applied migrations: {}", applied.join(", "));
    }
    // The token counter's pre-tokenizer is built before the port opens, not
    // by the first request that needs it.
    skein_providers::tokens::warm()
        .map_err(|e| anyhow::anyhow!("the token counter cannot start: {e}"))?;
    // Counts run on the CPU gate's slots (`skein_engine::cpu`); any other
    // (short, on a worker) uses the caller's thread alone, so that counting
    // never takes the core the gate keeps for the workers.
    skein_providers::tokens::set_threads(1);
    // The OpenAPI document, built once here and shared by every worker.
    skein_api::openapi_json();
    let listener = std::net::TcpListener::bind(&config.bind).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "; another process holds this port: stop it, or choose another address with \
                 SKEIN_BIND (or `bind` in the configuration file), for example \
                 SKEIN_BIND=127.0.0.1:8081"
            }
            std::io::ErrorKind::PermissionDenied => {
                "; ports below 1024 need privileges: choose another with SKEIN_BIND"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot listen on {}: {e}{hint}", config.bind)
    })?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    if config.bootstrap {
        bootstrap(&store, &base_url)?;
    }
    log::info!(
        "database: {} ({})",
        store.backend().name(),
        redact(&config.database_url)
    );
    let router = Router::from_config(&config.routing).context("invalid [routing] configuration")?;
    for line in router.describe() {
        log::info!("model route: {line}");
    }
    let tokens = skein_api::tokens::TokenVerifier::from_settings(&config.jwt.settings()?)
        .context("invalid JWT configuration")?;
    log::info!(
        "user tokens: {}",
        if tokens.is_some() {
            "enabled"
        } else {
            "not enabled (API keys only)"
        }
    );
    let lease_secs = i64::try_from(config.lease_ttl_secs).unwrap_or(i64::MAX);
    let clock = Clock::system();
    let rate_limiter = skein_api::ratelimit::RateLimiter::new(config.rate_limit, clock.clone());
    if rate_limiter.is_enabled() {
        let limits = rate_limiter.settings();
        log::info!(
            "rate limits: {} requests per {} s for each API key and each token user, {}",
            limits.requests,
            limits.window_secs,
            match store.backend() {
                skein_persistence::Backend::Postgres => "shared by every replica (PostgreSQL)",
                skein_persistence::Backend::Sqlite => "counted in this process (SQLite)",
            }
        );
    } else {
        log::info!("rate limits: off");
    }
    let policy = config.retention.policy();
    log::info!(
        "retention: threads expire after {} without activity or {} after creation, \
         purged {} after expiry or deletion; incognito threads deleted {} after creation; \
         responses kept {}; sweeper {}",
        short_duration(policy.thread_inactivity_ttl),
        short_duration(policy.thread_max_age),
        short_duration(policy.deleted_grace),
        short_duration(policy.incognito_ttl),
        short_duration(policy.response_ttl),
        match config.retention.sweep_every() {
            Some(_) => format!("every {}", short_duration(config.retention.sweep_interval)),
            None => "off".into(),
        }
    );
    let state = AppState {
        store,
        limits: config.limits,
        max_body_bytes: config.max_body_bytes,
        router,
        lease_ttl: chrono::TimeDelta::try_seconds(lease_secs)
            .context("SKEIN_LEASE_TTL_SECS is too large")?,
        running: Default::default(),
        quick_cancel: skein_api::state::DEFAULT_QUICK_CANCEL,
        response_ttl: policy.response_ttl,
        heartbeat: skein_api::state::DEFAULT_HEARTBEAT,
        tokens: tokens.map(std::sync::Arc::new),
        retention: policy,
        clock,
        rate_limiter: std::sync::Arc::new(rate_limiter),
        store_stream_events: config.store_stream_events,
        cors_origins: config.cors_origins.clone(),
        settling: Default::default(),
    };
    let metrics = actix_web::web::Data::new(Metrics::default());
    let sweeper = config.retention.sweep_every().map(|every| {
        let s = &state;
        sweep(
            s.store.clone(),
            s.retention,
            s.clock.clone(),
            metrics.clone(),
            every,
            config.retention.sweep_batch,
        )
    });
    actix_web::rt::System::new().block_on(async move {
        let signals = ShutdownSignals::install()?;
        if let Some(sweeper) = sweeper {
            actix_web::rt::spawn(sweeper);
        }
        // PostgreSQL: stream events and cancel requests of other replicas.
        state.store.listen();
        let settings = http::HttpSettings {
            workers: config.workers,
            client_request_timeout: std::time::Duration::from_millis(
                config.client_request_timeout_ms,
            ),
            // Our own handler below makes SIGINT as graceful as SIGTERM
            // (actix stops at once on SIGINT): signals are not actix's.
            shutdown_timeout_secs: 10,
        };
        let running = std::sync::Arc::clone(&state.running);
        let server = http::server(listener, settings, move || {
            skein_api::build_app(state.clone(), metrics.clone())
        })?;
        let handle = server.handle();
        // Announced only now: the socket is bound and the signal handlers
        // are in place.
        println!("Skein listening on {base_url}");
        println!("  API docs:   {base_url}/docs");
        println!("  Try:        curl -s {base_url}/v1/threads -H \"X-API-Key: $SKEIN_API_KEY\"");
        println!("  New key:    skein keys create --org ORG_ID --user USER_ID");
        let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
        actix_web::rt::spawn(async move {
            let signal = signals.recv().await;
            // New connections wait in the backlog (and are refused once the
            // socket closes); the running turns, whether or not a client
            // still follows them, go on on the workers until they end.
            handle.pause().await;
            let turns = running.turns();
            if turns > 0 {
                log::info!(
                    "{signal} received: letting {turns} running model response(s) finish \
                     (up to {} s)",
                    grace.as_secs()
                );
            }
            let drained = running.drain(grace, SHUTDOWN_CANCEL_WAIT).await;
            if drained.cancelled > 0 || drained.left > 0 {
                log::warn!(
                    "{} model response(s) still running after {} s were cancelled, their \
                     partial answers saved; {} did not end in time",
                    drained.cancelled,
                    grace.as_secs(),
                    drained.left
                );
            }
            log::info!("{signal} received: finishing requests in flight (up to 10 s)");
            handle.stop(true).await;
        });
        server.await
    })?;
    log::info!("shut down");
    Ok(())
}
