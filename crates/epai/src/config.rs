use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use epai_server::AccountSettings;
use epai_store::{KeyPolicy, StoreOptions};

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

    /// Log filter, e.g. "info" or "epai_server=debug,info".
    #[arg(long, env = "EPAI_LOG", default_value = "info", global = true)]
    pub log: String,
}

impl GlobalArgs {
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.db_pool_size.max(1),
            key_policy: KeyPolicy {
                ttl: Duration::from_secs(self.api_key_ttl_days.max(1) * 24 * 3600),
                rotation_grace: Duration::from_secs(self.api_key_grace_seconds),
            },
            ..StoreOptions::default()
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EPAI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Secret (at least 32 bytes) that signs portal session tokens [default: generated once and
    /// kept in <DATA_DIR>/jwt_secret].
    #[arg(long, env = "EPAI_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<JwtSecret>,

    /// Seconds a portal access token stays valid (60 to 86400).
    #[arg(
        long,
        env = "EPAI_ACCESS_TOKEN_TTL_SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(60..=86_400)
    )]
    pub access_token_ttl_seconds: u64,
}

impl ServeArgs {
    /// The configured secret, or the one kept in (and on first use generated into) `data_dir`.
    pub fn jwt_secret(&self, data_dir: &Path) -> anyhow::Result<JwtSecret> {
        match &self.jwt_secret {
            Some(secret) => Ok(secret.clone()),
            None => jwt_secret::load_or_create(data_dir),
        }
    }

    pub fn account_settings(&self) -> AccountSettings {
        AccountSettings {
            access_token_ttl: Duration::from_secs(self.access_token_ttl_seconds),
            ..AccountSettings::default()
        }
    }
}

pub fn init_tracing(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves at the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = interrupt.await;
            return;
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
