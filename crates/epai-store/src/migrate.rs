use tokio_postgres::NoTls;

use crate::connect::DatabaseTarget;
use crate::error::StoreError;
use crate::queries::named_query;

mod embedded_migrations {
    refinery::embed_migrations!("migrations");
}

/// Which migration the database is at, compared with the newest this binary carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: Option<i32>,
    pub expected: i32,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.applied == Some(self.expected)
    }
}

pub fn latest_migration_version() -> i32 {
    embedded_migrations::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// Applies every pending migration as the target's admin user; returns the versions applied.
///
/// Safe to run concurrently from several processes (an advisory lock serialises them) and on a
/// database that already has the seed schema (the SQL only adds what is missing).
pub async fn migrate(target: &DatabaseTarget) -> Result<Vec<i32>, StoreError> {
    migrate_until(target, refinery::Target::Latest).await
}

/// Applies pending migrations up to and including `version` only, as an older binary would
/// have left the database (for upgrade tests).
pub async fn migrate_to(target: &DatabaseTarget, version: i32) -> Result<Vec<i32>, StoreError> {
    migrate_until(target, refinery::Target::Version(version)).await
}

async fn migrate_until(
    target: &DatabaseTarget,
    until: refinery::Target,
) -> Result<Vec<i32>, StoreError> {
    let (mut client, connection) = target.admin_config().connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "migration connection ended");
        }
    });
    client
        .batch_execute(named_query!("schema/migration_session"))
        .await?;
    client
        .execute(named_query!("schema/migration_lock"), &[])
        .await?;
    let report = embedded_migrations::migrations::runner()
        .set_abort_divergent(true)
        .set_target(until)
        .run_async(&mut client)
        .await;
    let unlock = client
        .execute(named_query!("schema/migration_unlock"), &[])
        .await;
    drop(client);
    let _ = driver.await;
    let report = report.map_err(|e| StoreError::Migration(e.to_string()))?;
    unlock?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.version())
        .collect())
}
