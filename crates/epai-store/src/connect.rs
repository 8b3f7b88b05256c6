use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::StoreError;

/// The role every pooled connection acts as (see `migrations/V1__auth_shim_and_roles.sql`).
pub(crate) const APP_ROLE: &str = "epai_app";

/// Where the database is, and how to reach it for migrations (`admin`) and for the pool (`app`).
#[derive(Clone, Debug)]
pub struct DatabaseTarget {
    admin: tokio_postgres::Config,
    app: tokio_postgres::Config,
}

impl DatabaseTarget {
    /// An external server. Migrations run as the URL's user; the pool logs in as the same user
    /// and immediately becomes `epai_app`, so even a superuser URL gets no RLS bypass.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let admin: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("DATABASE_URL is not a valid URL: {e}")))?;
        let mut app = admin.clone();
        let role_option = format!("-c role={APP_ROLE}");
        let options = match admin.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {role_option}"),
            _ => role_option,
        };
        app.options(&options);
        Ok(Self { admin, app })
    }

    pub(crate) fn from_configs(admin: tokio_postgres::Config, app: tokio_postgres::Config) -> Self {
        Self { admin, app }
    }

    /// "dbname on host:port", for logs and banners; never includes a password.
    pub fn describe(&self) -> String {
        let host = match self.admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        let dbname = self
            .admin
            .get_dbname()
            .or(self.admin.get_user())
            .unwrap_or("postgres");
        format!("{dbname} on {host}:{port}")
    }

    /// This target with every application connection (the pool, the ingest writers, the
    /// listeners) bounded: `connect_timeout` to connect, and `statement_timeout` (set for the
    /// session at connect time, so it costs no round trip) per statement.
    ///
    /// JIT compilation is off for them too: EPAI's statements are short, and PostgreSQL's
    /// default compiles any statement estimated above a cost threshold, which for the models'
    /// feature queries took longer than running them (BENCHMARKS.md).
    fn bounded(&self, connect_timeout: Duration, statement_timeout: Option<Duration>) -> Self {
        let mut app = self.app.clone();
        app.connect_timeout(connect_timeout);
        let mut settings = vec!["-c jit=off".to_owned()];
        if let Some(limit) = statement_timeout.filter(|limit| !limit.is_zero()) {
            settings.push(format!("-c statement_timeout={}", limit.as_millis().max(1)));
        }
        let settings = settings.join(" ");
        let options = match app.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {settings}"),
            _ => settings,
        };
        app.options(&options);
        Self {
            admin: self.admin.clone(),
            app,
        }
    }

    pub fn admin_config(&self) -> &tokio_postgres::Config {
        &self.admin
    }

    pub fn app_config(&self) -> &tokio_postgres::Config {
        &self.app
    }
}

/// How API keys are issued: lifetime, and how long a replaced key keeps working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    pub ttl: Duration,
    pub rotation_grace: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(90 * 24 * 3600),
            rotation_grace: Duration::ZERO,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub pool_size: usize,
    /// How long a request waits for a free connection, or for a new one to open, before the
    /// store reports `Unavailable`.
    pub acquire_timeout: Duration,
    /// The longest one statement may run before PostgreSQL cancels it (`Timeout`); `None`:
    /// the server's own setting.
    pub statement_timeout: Option<Duration>,
    pub key_policy: KeyPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: None,
            key_policy: KeyPolicy::default(),
        }
    }
}

/// Which models a partner's new events make stale, and how long to wait for more events before
/// recomputing them (a burst of events causes one run, not one per event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecomputeOnIngest {
    pub models: Vec<String>,
    pub debounce: Duration,
}

impl Default for RecomputeOnIngest {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            debounce: Duration::from_millis(500),
        }
    }
}

/// The pool of `epai_app` connections and the only way to run queries.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) target: DatabaseTarget,
    pub(crate) key_policy: KeyPolicy,
    pub(crate) recompute: Arc<RecomputeOnIngest>,
}

impl Store {
    /// Builds the pool; connections are opened lazily, so this succeeds while the database is down.
    pub fn connect(target: &DatabaseTarget, options: &StoreOptions) -> Result<Self, StoreError> {
        let target = target.bounded(options.acquire_timeout, options.statement_timeout);
        let manager = Manager::from_config(
            target.app.clone(),
            NoTls,
            ManagerConfig {
                // Every transaction resets its role and claims itself (SET LOCAL), so a
                // returned connection carries no tenant state.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        Ok(Self {
            pool,
            target,
            key_policy: options.key_policy,
            recompute: Arc::new(RecomputeOnIngest::default()),
        })
    }

    /// Closes the pool for good: idle connections end now, connections in use once they are
    /// returned, and none is opened again. Called before the database it points at stops, so
    /// that its connections say goodbye instead of being cut off.
    pub fn close(&self) {
        self.pool.close();
    }

    /// This store, enqueueing a job per model in `recompute` whenever events of a partner are
    /// stored (in the same statement as the events).
    #[must_use]
    pub fn recomputing_on_ingest(mut self, recompute: RecomputeOnIngest) -> Self {
        self.recompute = Arc::new(recompute);
        self
    }

    /// Whether the database answers and which migration it is at, for `/ready`.
    pub async fn migration_status(&self) -> Result<crate::MigrationStatus, StoreError> {
        let conn = self.pool.get().await?;
        let applied = match conn
            .query_one(crate::queries::named_query!("schema/applied_version"), &[])
            .await
        {
            Ok(row) => row.get::<_, Option<i32>>(0),
            // No history table yet: nothing was ever migrated.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(crate::MigrationStatus {
            applied,
            expected: crate::latest_migration_version(),
        })
    }

    /// The role and privileges pooled connections really have (for startup checks and tests).
    pub async fn session_role(&self) -> Result<SessionRole, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(crate::queries::named_query!("schema/session_role"), &[])
            .await?;
        Ok(SessionRole {
            name: row.get(0),
            superuser: row.get(1),
            bypasses_rls: row.get(2),
        })
    }

    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRole {
    pub name: String,
    pub superuser: bool,
    pub bypasses_rls: bool,
}
