//! The throwaway database a benchmark run works in: created on the given server, migrated, and
//! dropped at the end whatever happened.

use anyhow::Context;
use epai_store::DatabaseTarget;
use tokio_postgres::NoTls;

pub struct ScratchDatabase {
    server: tokio_postgres::Config,
    name: String,
    url: String,
    target: DatabaseTarget,
}

impl ScratchDatabase {
    /// Creates `epai_bench_<random>` on the server of `server_url` and migrates it.
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        let server: tokio_postgres::Config = server_url
            .parse()
            .context("the database URL is not a valid PostgreSQL URL")?;
        let name = format!("epai_bench_{}", uuid::Uuid::new_v4().simple());
        let client = connect(&server)
            .await
            .context("cannot reach the PostgreSQL server to benchmark")?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let url = with_database(server_url, &name);
        let scratch = Self {
            server,
            target: DatabaseTarget::from_url(&url)?,
            name,
            url,
        };
        if let Err(e) = epai_store::migrate(&scratch.target).await {
            scratch.drop_database().await?;
            return Err(e).context("cannot migrate the benchmark database");
        }
        Ok(scratch)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of this database, as `epai serve` takes it in `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }

    /// A connection as the URL's user (superuser or owner), for fixtures and counting rows.
    pub async fn admin(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(self.target.admin_config()).await
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        let client = connect(&self.server).await?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("cannot drop database {}", self.name))
    }
}

pub async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "benchmark connection ended");
        }
    });
    Ok(client)
}

/// `url` naming database `name` instead of its own: the path of a `postgres://` URL, or a
/// `dbname=` appended to a key=value connection string (the last one wins).
fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return format!("{url} dbname={name}");
    };
    let (base, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn names_the_scratch_database_in_any_url_form() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "b"),
            "postgresql://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "b"),
            "postgres://h:5432/b"
        );
        assert_eq!(
            with_database("host=/run/postgresql user=postgres", "b"),
            "host=/run/postgresql user=postgres dbname=b"
        );
    }
}
