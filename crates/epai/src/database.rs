use std::sync::Mutex;

use anyhow::Context;
use epai_store::embedded::{ClusterOptions, EmbeddedCluster, ServerBinaries};
use epai_store::{DatabaseTarget, Store};

use crate::config::GlobalArgs;

/// How a command uses the embedded cluster's data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// `serve`: own the directory, refuse if another process does.
    Exclusive,
    /// Operator commands: attach to a running server's cluster, or start one for the duration.
    Shared,
}

/// The database a command works on: an external server, or the embedded cluster.
pub struct Database {
    target: DatabaseTarget,
    cluster: Option<EmbeddedCluster>,
    description: String,
    /// The pools opened on it, closed before the embedded cluster stops.
    stores: Mutex<Vec<Store>>,
}

pub async fn open(global: &GlobalArgs, ownership: Ownership) -> anyhow::Result<Database> {
    if let Some(url) = &global.database_url {
        let target = DatabaseTarget::from_url(url)?;
        let description = target.describe();
        return Ok(Database {
            target,
            cluster: None,
            description,
            stores: Mutex::default(),
        });
    }
    let options = ClusterOptions {
        data_dir: global.data_dir.clone(),
        bindir: global.pg_bindir.clone(),
        candidates: ServerBinaries::default_candidates(),
        os_user: global.pg_user.clone(),
    };
    let cluster = tokio::task::spawn_blocking(move || match ownership {
        Ownership::Exclusive => EmbeddedCluster::start(&options),
        Ownership::Shared => EmbeddedCluster::start_or_attach(&options),
    })
    .await??;
    cluster
        .ensure_database()
        .await
        .context("cannot create the epai database in the embedded cluster")?;
    let description = format!("embedded cluster in {}", cluster.pgdata().display());
    Ok(Database {
        target: cluster.target(),
        cluster: Some(cluster),
        description,
        stores: Mutex::default(),
    })
}

/// Opens the database and applies pending migrations.
pub async fn open_migrated(global: &GlobalArgs) -> anyhow::Result<Database> {
    let db = open(global, Ownership::Shared).await?;
    db.migrate().await?;
    Ok(db)
}

impl Database {
    pub async fn migrate(&self) -> anyhow::Result<Vec<i32>> {
        epai_store::migrate(&self.target)
            .await
            .context("database migration failed")
    }

    pub fn store(&self, global: &GlobalArgs) -> anyhow::Result<Store> {
        let store = Store::connect(&self.target, &global.store_options())?;
        if let Ok(mut stores) = self.stores.lock() {
            stores.push(store.clone());
        }
        Ok(store)
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Closes the pools opened on it, then stops the embedded cluster if this process started
    /// it. Without the first step each idle connection would be cut off by the stopping
    /// server and log a connection error.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Ok(stores) = self.stores.lock() {
            stores.iter().for_each(Store::close);
        }
        if let Some(cluster) = self.cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
        }
        Ok(())
    }
}
