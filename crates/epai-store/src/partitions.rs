//! Retention and growth of the tables that grow with traffic, `ingestion_events` and `logs`:
//! both are partitioned by month of `created_at` (migration V11), so keeping the partitions of
//! the coming months ready and expiring old data are catalog operations, not mass deletes.
//!
//! The work itself is `epai_maintain_partitions` in the database (one call per table, holding
//! an advisory lock so that replicas running it at the same time do not collide); this module
//! says what to keep and reports what was done.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::connect::Store;
use crate::error::StoreError;
use crate::queries::named_query;

/// The partitioned tables, in the order they are maintained.
pub const PARTITIONED_TABLES: [&str; 2] = ["ingestion_events", "logs"];

/// How long rows are kept and how far ahead partitions are prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Request logs older than this go (`None`: kept forever).
    pub logs: Option<Duration>,
    /// Events older than this (by ingestion time) go (`None`: kept forever).
    pub events: Option<Duration>,
    /// Partitions exist for the current month and this many after it.
    pub months_ahead: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            logs: Some(Duration::from_secs(90 * 24 * 3600)),
            events: None,
            months_ahead: 3,
        }
    }
}

impl RetentionPolicy {
    pub fn retention_of(&self, table: &str) -> Option<Duration> {
        match table {
            "logs" => self.logs,
            _ => self.events,
        }
    }
}

/// What a maintenance pass did (or, in a dry run, would do) to one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionChange {
    /// A month partition was added; `rows` moved into it from the DEFAULT partition.
    Create,
    /// An expired month partition was dropped with about `rows` rows.
    Drop,
    /// `rows` expired rows were deleted from the DEFAULT partition.
    Purge,
    /// Another process was maintaining the table; nothing was done.
    Skip,
    /// The lock needed was not granted in time; the next pass retries.
    Busy,
    /// The change failed; `detail` says why.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionAction {
    pub table: String,
    pub change: PartitionChange,
    pub partition: Option<String>,
    pub range_start: Option<DateTime<Utc>>,
    pub range_end: Option<DateTime<Utc>>,
    pub rows: Option<i64>,
    pub detail: Option<String>,
}

impl Store {
    /// One maintenance pass over every partitioned table as of `now`: creates the partitions
    /// of the coming months (moving rows that landed in the DEFAULT partition into their
    /// month) and drops the months that `policy` no longer keeps. With `dry_run`, only reports.
    ///
    /// Each table is maintained in its own transaction; a table that fails is reported as a
    /// `Failed` action and does not stop the other.
    pub async fn maintain_partitions(
        &self,
        policy: &RetentionPolicy,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<PartitionAction>, StoreError> {
        let mut actions = Vec::new();
        for table in PARTITIONED_TABLES {
            let retention = policy.retention_of(table).map(|d| d.as_secs_f64());
            let months_ahead = i32::try_from(policy.months_ahead).unwrap_or(i32::MAX);
            let outcome = self
                .as_service_role(async |service| {
                    service
                        .tx
                        .execute(named_query!("partitions/session"), &[])
                        .await?;
                    Ok(service
                        .tx
                        .query(
                            named_query!("partitions/maintain"),
                            &[&table, &months_ahead, &retention, &dry_run, &now],
                        )
                        .await?)
                })
                .await;
            match outcome {
                Ok(rows) => actions.extend(rows.iter().map(|row| action_of(table, row))),
                Err(e @ (StoreError::Unavailable(_) | StoreError::Timeout(_))) => return Err(e),
                Err(e) => actions.push(PartitionAction {
                    table: table.to_owned(),
                    change: PartitionChange::Failed,
                    partition: None,
                    range_start: None,
                    range_end: None,
                    rows: None,
                    detail: Some(e.to_string()),
                }),
            }
        }
        Ok(actions)
    }
}

fn action_of(table: &str, row: &tokio_postgres::Row) -> PartitionAction {
    let change = match row.get::<_, &str>("action") {
        "create" => PartitionChange::Create,
        "drop" => PartitionChange::Drop,
        "purge" => PartitionChange::Purge,
        "skip" => PartitionChange::Skip,
        "busy" => PartitionChange::Busy,
        _ => PartitionChange::Failed,
    };
    PartitionAction {
        table: table.to_owned(),
        change,
        partition: row.get("partition_name"),
        range_start: row.get("range_start"),
        range_end: row.get("range_end"),
        rows: row.get("row_count"),
        detail: row.get("detail"),
    }
}
