use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use epai_domain::EventLimits;
use epai_server::rate_limit::{self, Quota, RateLimitSettings};
use epai_server::{AccountSettings, JwtKeys, ReadCacheSettings, ServerSettings};
use epai_store::{IngestOptions, KeyPolicy, RetentionPolicy, StoreOptions};

use crate::jwt_secret::{self, JwtSecret};

/// Settings shared by every command; each flag also reads an environment variable.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Where EPAI keeps its state (the embedded PostgreSQL cluster lives in <DATA_DIR>/pgdata).
    #[arg(long, env = "EPAI_DATA_DIR", default_value = ".epai", global = true)]
    pub data_dir: PathBuf,

    /// Use this PostgreSQL server instead of the embedded cluster,
    /// e.g. postgres://user:password@host:5432/epai.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory with the PostgreSQL server binaries (initdb, pg_ctl, postgres) for the embedded
    /// cluster; searched for when not given.
    #[arg(long, env = "EPAI_PG_BINDIR", global = true)]
    pub pg_bindir: Option<PathBuf>,

    /// OS user that runs the embedded PostgreSQL when epai runs as root [default: postgres, then nobody].
    #[arg(long, env = "EPAI_PG_USER", global = true)]
    pub pg_user: Option<String>,

    /// Maximum number of database connections in the pool.
    #[arg(long, env = "EPAI_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: usize,

    /// Milliseconds a connection may wait for a free pooled connection (or to open one) before
    /// the request gets 503.
    #[arg(
        long,
        env = "EPAI_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub db_acquire_timeout_ms: u64,

    /// Milliseconds one SQL statement may run before PostgreSQL cancels it (the request gets
    /// 503 service/timeout); 0 leaves the server's own setting.
    #[arg(
        long,
        env = "EPAI_STATEMENT_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub statement_timeout_ms: u64,

    /// Days request logs are kept (0 = forever); expired months are dropped by partition.
    #[arg(
        long,
        env = "EPAI_LOG_RETENTION_DAYS",
        default_value_t = 90,
        global = true
    )]
    pub log_retention_days: u64,

    /// Days events are kept, by ingestion time (0 = forever); expired months are dropped by
    /// partition.
    #[arg(
        long,
        env = "EPAI_EVENT_RETENTION_DAYS",
        default_value_t = 0,
        global = true
    )]
    pub event_retention_days: u64,

    /// Months after the current one that always have their partitions ready.
    #[arg(
        long,
        env = "EPAI_PARTITIONS_AHEAD",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(0..=120),
        global = true
    )]
    pub partitions_ahead: u32,

    /// Days a newly issued API key stays valid.
    #[arg(
        long,
        env = "EPAI_API_KEY_TTL_DAYS",
        default_value_t = 90,
        global = true
    )]
    pub api_key_ttl_days: u64,

    /// Seconds the previous API key keeps working after a rotation, so partners can deploy.
    #[arg(
        long,
        env = "EPAI_API_KEY_GRACE_SECONDS",
        default_value_t = 0,
        global = true
    )]
    pub api_key_grace_seconds: u64,

    /// Requests per minute each API key may make (0 = unlimited); `epai partner limits` sets
    /// another quota for one partner.
    #[arg(
        long,
        env = "EPAI_RATE_LIMIT_PER_KEY",
        default_value_t = rate_limit::DEFAULT_PER_KEY,
        global = true
    )]
    pub rate_limit_per_key: u32,

    /// Requests per minute from one client IP without a valid credential (0 = unlimited).
    #[arg(
        long,
        env = "EPAI_RATE_LIMIT_PER_IP",
        default_value_t = rate_limit::DEFAULT_PER_IP,
        global = true
    )]
    pub rate_limit_per_ip: u32,

    /// Redis server holding the rate-limit state, so that replicas share one budget per key and
    /// IP, e.g. redis://redis.internal:6379. Without it each process counts on its own.
    #[arg(long, env = "EPAI_REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Log filter, e.g. "info" or "epai_server=debug,info".
    #[arg(
        long,
        env = "EPAI_LOG",
        default_value = "info,refinery_core=warn",
        global = true
    )]
    pub log: String,
}

impl GlobalArgs {
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.db_pool_size.max(1),
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms.max(1)),
            statement_timeout: (self.statement_timeout_ms > 0)
                .then(|| Duration::from_millis(self.statement_timeout_ms)),
            key_policy: KeyPolicy {
                ttl: Duration::from_secs(self.api_key_ttl_days.max(1) * 24 * 3600),
                rotation_grace: Duration::from_secs(self.api_key_grace_seconds),
            },
        }
    }

    pub fn retention_policy(&self) -> RetentionPolicy {
        let days = |n: u64| (n > 0).then(|| Duration::from_secs(n * 24 * 3600));
        RetentionPolicy {
            logs: days(self.log_retention_days),
            events: days(self.event_retention_days),
            months_ahead: self.partitions_ahead,
        }
    }

    pub fn rate_limit_settings(&self) -> RateLimitSettings {
        RateLimitSettings {
            per_key: Quota::per_minute(self.rate_limit_per_key),
            per_ip: Quota::per_minute(self.rate_limit_per_ip),
            redis_url: self.redis_url.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EPAI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Seconds a request may take before it is abandoned with 503.
    #[arg(long, env = "EPAI_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Comma-separated proxy addresses whose X-Forwarded-For header names the real client.
    #[arg(long, env = "EPAI_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,

    /// Most events in one batch request.
    #[arg(long, env = "EPAI_MAX_BATCH_EVENTS", default_value_t = 1000)]
    pub max_batch_events: usize,

    /// Largest batch request body, in bytes.
    #[arg(long, env = "EPAI_MAX_BODY_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest data plus metadata of one event, in bytes.
    #[arg(long, env = "EPAI_MAX_EVENT_BYTES", default_value_t = 64 * 1024)]
    pub max_event_bytes: usize,

    /// Requests that may wait for the ingest writers before new ones get 503.
    #[arg(long, env = "EPAI_INGEST_QUEUE", default_value_t = 10_000)]
    pub ingest_queue: usize,

    /// Group commits in flight at once, each on its own database connection.
    #[arg(long, env = "EPAI_INGEST_WRITERS", default_value_t = IngestOptions::default().writers)]
    pub ingest_writers: usize,

    /// A group commit of fewer events waits while `--ingest-small-commits` such commits are in
    /// flight and takes the requests that arrived meanwhile along; 0 never waits (for a disk
    /// whose flush, not the CPU, is the limit).
    #[arg(long, env = "EPAI_INGEST_COALESCE_ROWS", default_value_t = IngestOptions::default().coalesce_rows)]
    pub ingest_coalesce_rows: usize,

    /// Group commits of fewer than `--ingest-coalesce-rows` events in flight at once; the next
    /// one waits for one of them to end. Unset: 3 where a commit's flush to disk takes 0.5 ms
    /// or more, else 1, timed when the server starts.
    #[arg(long, env = "EPAI_INGEST_SMALL_COMMITS")]
    pub ingest_small_commits: Option<usize>,

    /// Milliseconds an insight page may be answered from this replica's cache when no change
    /// of the partner's insights is announced; 0 turns the cache off.
    #[arg(long, env = "EPAI_INSIGHTS_CACHE_TTL_MS", default_value_t = millis(ReadCacheSettings::default().insights_ttl))]
    pub insights_cache_ttl_ms: u64,

    /// Milliseconds a usage summary may be answered from this replica's cache: how late events
    /// stored through other replicas may show in it; 0 turns the cache off.
    #[arg(long, env = "EPAI_USAGE_CACHE_TTL_MS", default_value_t = millis(ReadCacheSettings::default().usage_ttl))]
    pub usage_cache_ttl_ms: u64,

    /// Seconds between partition maintenance passes (creating months ahead, dropping expired
    /// ones); 0 leaves it to `epai maintenance`.
    #[arg(
        long,
        env = "EPAI_MAINTENANCE_INTERVAL_SECONDS",
        default_value_t = 3600
    )]
    pub maintenance_interval_seconds: u64,

    /// Secret (at least 32 bytes) that signs portal session tokens [default: generated once and
    /// kept in <DATA_DIR>/jwt_secret].
    #[arg(long, env = "EPAI_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<JwtSecret>,

    /// Comma-separated secrets that EPAI_JWT_SECRET replaced: tokens they signed are still
    /// accepted until they expire, but nothing new is signed with them (secrets retired by
    /// `epai jwt rotate` are read from <DATA_DIR>/jwt_secret.retired as well).
    #[arg(
        long,
        env = "EPAI_JWT_PREVIOUS_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub jwt_previous_secrets: Vec<JwtSecret>,

    /// Seconds a portal access token stays valid (60 to 86400).
    #[arg(
        long,
        env = "EPAI_ACCESS_TOKEN_TTL_SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(60..=86_400)
    )]
    pub access_token_ttl_seconds: u64,

    #[command(flatten)]
    pub insights: crate::workers::InsightArgs,
}

impl ServeArgs {
    /// The configured secret, or the one kept in (and on first use generated into) `data_dir`.
    pub fn jwt_secret(&self, data_dir: &Path) -> anyhow::Result<JwtSecret> {
        match &self.jwt_secret {
            Some(secret) => Ok(secret.clone()),
            None => jwt_secret::load_or_create(data_dir),
        }
    }

    /// The keys of session and embed tokens: the current secret signs; the previous secrets
    /// (configured, or retired by `epai jwt rotate` within a token lifetime) only verify.
    pub fn jwt_keys(&self, data_dir: &Path) -> anyhow::Result<JwtKeys> {
        let secret = self.jwt_secret(data_dir)?;
        let mut keys = JwtKeys::from_secret(secret.as_bytes()).context("EPAI_JWT_SECRET")?;
        for previous in &self.jwt_previous_secrets {
            keys = keys
                .with_previous(previous.as_bytes())
                .context("EPAI_JWT_PREVIOUS_SECRETS")?;
        }
        // Tokens a retired secret signed live at most an access token's lifetime (embed tokens
        // at most 15 minutes).
        let lifetime = Duration::from_secs(self.access_token_ttl_seconds.max(15 * 60));
        for retired in jwt_secret::retired_within(data_dir, chrono::Utc::now(), lifetime)? {
            keys = keys
                .with_previous(retired.as_bytes())
                .context(jwt_secret::RETIRED_FILE_NAME)?;
        }
        Ok(keys)
    }

    pub fn account_settings(&self) -> AccountSettings {
        AccountSettings {
            access_token_ttl: Duration::from_secs(self.access_token_ttl_seconds),
            ..AccountSettings::default()
        }
    }

    pub fn server_settings(&self) -> ServerSettings {
        let defaults = ServerSettings::default();
        let request_timeout = Duration::from_secs(self.request_timeout_seconds.max(1));
        ServerSettings {
            event_limits: EventLimits {
                max_event_bytes: self.max_event_bytes,
                max_batch_events: self.max_batch_events.max(1),
                ..defaults.event_limits
            },
            max_body_bytes: self.max_body_bytes,
            max_event_body_bytes: (self.max_event_bytes * 4).min(self.max_body_bytes),
            request_timeout,
            trusted_proxies: self.trusted_proxies.clone(),
            ingest: IngestOptions {
                queue_capacity: self.ingest_queue.max(1),
                writers: self.ingest_writers.max(1),
                coalesce_rows: self.ingest_coalesce_rows,
                small_commits: self.ingest_small_commits.map(|limit| limit.max(1)),
                // A writer waiting longer would be answering requests already abandoned.
                commit_timeout: request_timeout,
                ..defaults.ingest
            },
            read_cache: ReadCacheSettings {
                insights_ttl: Duration::from_millis(self.insights_cache_ttl_ms),
                usage_ttl: Duration::from_millis(self.usage_cache_ttl_ms),
            },
            ..defaults
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// tokio-postgres logs every statement's parameters at debug level, and those hold password
/// hashes and partners' event data: whatever the filter asks for, it logs at most at info.
const QUIET_DATABASE_DRIVER: &str = "tokio_postgres=info";

pub fn init_tracing(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(
            QUIET_DATABASE_DRIVER
                .parse()
                .expect("a valid filter directive"),
        );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves at the first SIGINT or SIGTERM. Both are caught from the moment this is called, so
/// a signal that arrives before the future is first awaited still stops the process cleanly.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
            }
            (Ok(mut interrupt), Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                interrupt.recv().await;
            }
            (Err(e), _) => {
                tracing::error!(error = %e, "cannot listen for signals; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutdown requested: finishing in-flight requests");
    }
}
