//! Fresh databases for tests, on a real PostgreSQL server.
//!
//! Each [`TestDatabase`] is a new database on the server named by `EPAI_TEST_DATABASE_URL`
//! (default: the local server on 127.0.0.1:5432 as `postgres`), migrated, and dropped when the
//! value is dropped. Migrations of different test processes are serialised because the roles
//! they create are shared by the whole cluster.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

use crate::{DatabaseTarget, Store, StoreError, StoreOptions};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn server_url() -> String {
    std::env::var("EPAI_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned())
}

/// A migrated, empty database that is dropped with this value.
pub struct TestDatabase {
    name: String,
    target: DatabaseTarget,
    server: tokio_postgres::Config,
    /// Only the handle that created the database drops it.
    owned: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// A new database with every migration applied.
    pub async fn migrated() -> Self {
        let db = Self::empty().await;
        db.run_with_cluster_lock(crate::migrate(&db.target))
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// A new database migrated only up to `version`, as an older release left it.
    pub async fn migrated_to(version: i32) -> Self {
        let db = Self::empty().await;
        db.run_with_cluster_lock(crate::migrate_to(&db.target, version))
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// A new database with nothing in it, for tests that set up an older schema first.
    pub async fn empty() -> Self {
        let server: tokio_postgres::Config = server_url().parse().expect("EPAI_TEST_DATABASE_URL");
        let name = format!(
            "epai_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        let (client, connection) = server.connect(NoTls).await.expect(
            "tests need PostgreSQL on 127.0.0.1:5432 (or EPAI_TEST_DATABASE_URL) with trust auth",
        );
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        drop(client);
        let _ = driver.await;
        let mut admin = server.clone();
        admin.dbname(&name);
        let url = config_to_url(&admin);
        Self {
            name,
            target: DatabaseTarget::from_url(&url).expect("test database url"),
            server,
            owned: true,
        }
    }

    /// Another handle on the same database (for a second server); it does not drop it.
    pub fn sibling(&self) -> Self {
        Self {
            name: self.name.clone(),
            target: self.target.clone(),
            server: self.server.clone(),
            owned: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }

    /// A URL for this database, as a `DATABASE_URL` would be given to `epai`.
    pub fn url(&self) -> String {
        config_to_url(self.target.admin_config())
    }

    pub fn store(&self) -> Store {
        Store::connect(&self.target, &StoreOptions::default()).expect("pool")
    }

    pub fn store_with(&self, options: &StoreOptions) -> Store {
        Store::connect(&self.target, options).expect("pool")
    }

    /// A superuser connection to this database, for setting up fixtures and inspecting state.
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = self
            .target
            .admin_config()
            .connect(NoTls)
            .await
            .expect("admin connection");
        tokio::spawn(connection);
        client
    }

    /// Runs `work` while holding a lock shared by every test process on the server: role
    /// creation and grants touch cluster-wide catalogs and conflict when run concurrently.
    pub async fn run_with_cluster_lock<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let (client, connection) = self.server.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        client
            .execute(
                "SELECT pg_advisory_lock(hashtext('epai.test.cluster_roles'))",
                &[],
            )
            .await?;
        let outcome = work.await;
        drop(client); // the lock is released with the session
        let _ = driver.await;
        outcome
    }
}

fn config_to_url(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{dbname}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a thread with its own runtime works in both.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let (client, connection) = server.connect(NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
