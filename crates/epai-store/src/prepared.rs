//! Transactions whose statements are prepared once per pooled connection and reused.
//!
//! A statement given as text costs a round trip of its own (parse and describe) and a parse
//! and plan in PostgreSQL on every call; a tenant read is several statements, so that was most
//! of its time. The named queries are a fixed set, so each connection keeps them prepared
//! (deadpool's per-connection statement cache). PostgreSQL replans a cached statement itself
//! when the role or the tables under it change, so row-level security still decides per
//! transaction.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

pub(crate) struct PreparedTransaction<'a>(Transaction<'a>);

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<'a> PreparedTransaction<'a> {
    pub(crate) fn new(tx: Transaction<'a>) -> Self {
        Self(tx)
    }

    pub(crate) async fn query(
        &self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query(&statement, params).await
    }

    pub(crate) async fn query_one(
        &self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Row, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_one(&statement, params).await
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_opt(&statement, params).await
    }

    pub(crate) async fn execute(
        &self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<u64, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.execute(&statement, params).await
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.0.commit().await
    }

    /// The transaction itself, for statements that are not named queries (tests).
    #[cfg(feature = "test-support")]
    pub(crate) fn inner(&self) -> &Transaction<'a> {
        &self.0
    }
}
