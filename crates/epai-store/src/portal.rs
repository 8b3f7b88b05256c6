//! Queries only the portal needs: filtered request logs, one log, and the partner's profile.

use epai_domain::{Email, PartnerName};
use uuid::Uuid;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::tenant::{LogDetail, PartnerRecord, Tenant};

/// Which request logs to list: newest first, `limit` from `offset`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// The status class: 2 for 2xx, 4 for 4xx, 5 for 5xx.
    pub status_class: Option<i32>,
    /// Only endpoints containing this text.
    pub endpoint: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

fn log_detail(row: &tokio_postgres::Row) -> LogDetail {
    LogDetail {
        id: row.get("id"),
        created_at: row.get("created_at"),
        method: row.get("method"),
        path: row.get("endpoint"),
        status_code: row.get("status"),
        duration_ms: row.get("duration"),
        request_body: row.get("request_body"),
        response_body: row.get("response_body"),
    }
}

impl Tenant<'_> {
    /// The partner's request logs matching `filter`, with their masked bodies.
    pub async fn filtered_logs(&self, filter: &LogFilter) -> Result<Vec<LogDetail>, StoreError> {
        let rows = self
            .tx
            .query(
                named_query!("portal/logs"),
                &[
                    &filter.status_class,
                    &filter.endpoint,
                    &filter.limit,
                    &filter.offset,
                ],
            )
            .await?;
        Ok(rows.iter().map(log_detail).collect())
    }

    /// One request log; `None` when it does not exist or belongs to another partner.
    pub async fn log(&self, id: Uuid) -> Result<Option<LogDetail>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("portal/log_one"), &[&id])
            .await?
            .as_ref()
            .map(log_detail))
    }

    /// Renames the partner and changes its contact email (not the sign-in email).
    pub async fn update_profile(
        &self,
        name: &PartnerName,
        email: &Email,
    ) -> Result<PartnerRecord, StoreError> {
        let row = self
            .tx
            .query_opt(
                named_query!("portal/update_profile"),
                &[&name.as_str(), &email.as_str()],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound("no partner for this account".into()))?;
        Ok(PartnerRecord::from_row(&row))
    }
}
