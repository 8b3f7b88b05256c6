use chrono::{DateTime, NaiveDate, Utc};
use epai_domain::{AuthUserId, PartnerId};
use serde::Serialize;
use uuid::Uuid;

use crate::connect::{KeyPolicy, Store};
use crate::error::StoreError;
use crate::prepared::PreparedTransaction;
use crate::queries::named_query;
use crate::stored_json::StoredJson;

/// A transaction running as role `authenticated` with one user's claims: row-level security
/// limits every statement in it to that user's partner.
pub struct Tenant<'a> {
    pub(crate) tx: PreparedTransaction<'a>,
    user: AuthUserId,
    key_policy: KeyPolicy,
}

impl Store {
    /// Runs `work` in one transaction as `user` (SET LOCAL ROLE authenticated plus
    /// `request.jwt.claims`), commits if it succeeds and rolls back otherwise.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn as_user<T>(
        &self,
        user: AuthUserId,
        work: impl AsyncFnOnce(&Tenant<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = PreparedTransaction::new(conn.transaction().await?);
        let claims = serde_json::json!({ "sub": user, "role": "authenticated" }).to_string();
        tx.execute(named_query!("tenant/enter"), &[&claims]).await?;
        let tenant = Tenant {
            tx,
            user,
            key_policy: self.key_policy,
        };
        let outcome = work(&tenant).await?;
        tenant.tx.commit().await?;
        Ok(outcome)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartnerRecord {
    pub id: PartnerId,
    pub user_id: Option<AuthUserId>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Requests per minute allowed to this partner's API key; `None` means the server's default,
    /// 0 means unlimited.
    pub rate_limit_per_minute: Option<i32>,
}

impl PartnerRecord {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: PartnerId::new(row.get("id")),
            user_id: row.get::<_, Option<Uuid>>("user_id").map(AuthUserId::new),
            name: row.get("name"),
            email: row.get("email"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
            rate_limit_per_minute: row.get("rate_limit_per_minute"),
        }
    }

    /// The account that acts for this partner (seed rows may lack one).
    pub fn require_user(&self) -> Result<AuthUserId, StoreError> {
        self.user_id
            .ok_or_else(|| StoreError::NotFound(format!("partner {} has no user account", self.id)))
    }
}

/// The current key's metadata; the key itself is never readable after creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKeyStatus {
    pub id: Uuid,
    pub key_prefix: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One row of `get_logs_for_partner`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub id: Uuid,
    pub endpoint: String,
    pub method: String,
    pub status: i32,
    pub duration: Option<i32>,
    pub created_at: Option<DateTime<Utc>>,
}

/// One row of `get_partner_usage_summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    pub date: NaiveDate,
    pub event_count: i32,
    pub insight_count: i32,
}

fn interval_text(duration: std::time::Duration) -> String {
    format!("{} seconds", duration.as_secs())
}

impl Tenant<'_> {
    pub fn user(&self) -> AuthUserId {
        self.user
    }

    /// The transaction itself, for tests that probe the policies with their own statements.
    #[cfg(feature = "test-support")]
    pub fn transaction(&self) -> &deadpool_postgres::Transaction<'_> {
        self.tx.inner()
    }

    /// The user's partner; `NotFound` when the account has none.
    pub async fn partner(&self) -> Result<PartnerRecord, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("partners/own"), &[])
            .await?
            .ok_or_else(|| StoreError::NotFound("no partner for this account".into()))?;
        Ok(PartnerRecord::from_row(&row))
    }

    /// `regenerate_api_key_for_partner()`: a new key, returned in plaintext this once.
    pub async fn regenerate_api_key(&self) -> Result<String, StoreError> {
        self.tx
            .execute(
                named_query!("tenant/key_policy"),
                &[
                    &interval_text(self.key_policy.ttl),
                    &interval_text(self.key_policy.rotation_grace),
                ],
            )
            .await?;
        let row = self
            .tx
            .query_one(named_query!("api_keys/regenerate"), &[])
            .await?;
        Ok(row.get(0))
    }

    /// `get_api_key_for_partner()` with prefix and last use; `None` before the first key.
    pub async fn api_key_status(&self) -> Result<Option<ApiKeyStatus>, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("api_keys/status"), &[])
            .await?;
        Ok(row.map(|row| ApiKeyStatus {
            id: row.get("api_key_id"),
            key_prefix: row.get("key_prefix"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
            last_used_at: row.get("last_used_at"),
        }))
    }

    /// `get_logs_for_partner(limit, offset)`, newest first.
    pub async fn logs(&self, limit: i32, offset: i32) -> Result<Vec<LogEntry>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("logs/for_partner"), &[&limit, &offset])
            .await?;
        Ok(rows
            .iter()
            .map(|row| LogEntry {
                id: row.get("id"),
                endpoint: row.get("endpoint"),
                method: row.get("method"),
                status: row.get("status"),
                duration: row.get("duration"),
                created_at: row.get("created_at"),
            })
            .collect())
    }

    /// `get_partner_usage_summary(days)`: one row per UTC day, oldest first.
    pub async fn usage_summary(&self, days: i32) -> Result<Vec<UsageDay>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("usage/summary"), &[&days])
            .await?;
        Ok(rows
            .iter()
            .map(|row| UsageDay {
                date: row.get("date"),
                event_count: row.get("event_count"),
                insight_count: row.get("insight_count"),
            })
            .collect())
    }
}

/// Which events to list: newest first, `limit` of them, before the `before` cursor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// `(occurred_at, id)` of the last event of the previous page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub id: Uuid,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub source: String,
    pub version: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub occurred_at: DateTime<Utc>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Which insights to list: newest first, by model name and age, by cursor or offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InsightFilter {
    pub model: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// `(created_at, id)` of the last insight of the previous page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InsightRecord {
    pub id: Uuid,
    pub model_id: Option<Uuid>,
    pub model_name: Option<String>,
    /// `title`, `description`, `confidence` (0..1), `recommendation`, and the model's numbers.
    #[schema(value_type = Object)]
    pub content: StoredJson,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<StoredJson>,
    pub created_at: Option<DateTime<Utc>>,
    /// When a model last recomputed it (equal to `created_at` until then).
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelRecord {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub version: String,
    pub status: String,
    /// Inputs and outputs of the model.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl InsightRecord {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            model_id: row.get("model_id"),
            model_name: row.get("model_name"),
            content: row.get("content"),
            metadata: row.get("metadata"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

impl Tenant<'_> {
    /// The partner's events matching `filter`, newest first.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let (before_at, before_id) = filter.before.unzip();
        let rows = self
            .tx
            .query(
                named_query!("events/list"),
                &[
                    &filter.event_type,
                    &filter.since,
                    &filter.until,
                    &before_at,
                    &before_id,
                    &filter.limit,
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| EventRecord {
                id: row.get("id"),
                event_type: row.get("event_type"),
                data: row.get("data"),
                source: row.get("source"),
                version: row.get("version"),
                metadata: row.get("metadata"),
                occurred_at: row.get("occurred_at"),
                created_at: row.get("created_at"),
            })
            .collect())
    }

    /// The partner's insights matching `filter`, newest first, and how many match in all.
    pub async fn insights(
        &self,
        filter: &InsightFilter,
    ) -> Result<(Vec<InsightRecord>, i64), StoreError> {
        let (before_at, before_id) = filter.before.unzip();
        let list_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &filter.model,
            &filter.since,
            &before_at,
            &before_id,
            &filter.limit,
            &filter.offset,
        ];
        let count_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&filter.model, &filter.since];
        // Both statements go out together (pipelined on the connection): one round trip.
        let (rows, total) = tokio::try_join!(
            self.tx.query(named_query!("insights/list"), &list_params),
            self.tx
                .query_one(named_query!("insights/count"), &count_params),
        )?;
        let total: i64 = total.get(0);
        Ok((rows.iter().map(InsightRecord::from_row).collect(), total))
    }

    /// One insight; `None` when it does not exist or belongs to another partner.
    pub async fn insight(&self, id: Uuid) -> Result<Option<InsightRecord>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("insights/one"), &[&id])
            .await?
            .as_ref()
            .map(InsightRecord::from_row))
    }

    /// The partner's insights changed at or after the last change of `since` (included), oldest
    /// change first, at most `limit`; none when `since` is not one of the partner's insights.
    pub async fn insights_changed_since(
        &self,
        since: Uuid,
        limit: i64,
    ) -> Result<Vec<InsightRecord>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("insights/changed_since"), &[&since, &limit])
            .await?;
        Ok(rows.iter().map(InsightRecord::from_row).collect())
    }

    /// The model catalogue.
    pub async fn models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        let rows = self.tx.query(named_query!("models/list"), &[]).await?;
        Ok(rows
            .iter()
            .map(|row| ModelRecord {
                id: row.get("id"),
                name: row.get("name"),
                description: row.get("description"),
                version: row.get("version"),
                status: row.get("status"),
                metadata: row.get("metadata"),
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
            })
            .collect())
    }
}

/// All-time totals for the original `/get-usage-stats` path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    pub total_ingestion_events: i64,
    pub total_insights_generated: i64,
    pub latest_event_timestamp: Option<DateTime<Utc>>,
}

/// A request log row with its (masked) bodies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogDetail {
    pub id: Uuid,
    pub created_at: Option<DateTime<Utc>>,
    pub method: String,
    pub path: String,
    pub status_code: i32,
    pub duration_ms: Option<i32>,
    pub request_body: Option<serde_json::Value>,
    pub response_body: Option<serde_json::Value>,
}

impl Tenant<'_> {
    pub async fn usage_totals(&self) -> Result<UsageTotals, StoreError> {
        let row = self.tx.query_one(named_query!("usage/totals"), &[]).await?;
        Ok(UsageTotals {
            total_ingestion_events: row.get("total_ingestion_events"),
            total_insights_generated: row.get("total_insights_generated"),
            latest_event_timestamp: row.get("latest_event_timestamp"),
        })
    }

    /// Request logs with bodies, newest first.
    pub async fn log_details(&self, limit: i64, offset: i64) -> Result<Vec<LogDetail>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("logs/details"), &[&limit, &offset])
            .await?;
        Ok(rows
            .iter()
            .map(|row| LogDetail {
                id: row.get("id"),
                created_at: row.get("created_at"),
                method: row.get("method"),
                path: row.get("endpoint"),
                status_code: row.get("status"),
                duration_ms: row.get("duration"),
                request_body: row.get("request_body"),
                response_body: row.get("response_body"),
            })
            .collect())
    }
}

impl Tenant<'_> {
    /// `(occurred_at, data)` of the partner's latest `limit` events of `event_type`.
    pub async fn recent_event_data(
        &self,
        event_type: &str,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, serde_json::Value)>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("events/recent_data"), &[&event_type, &limit])
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get("occurred_at"), row.get("data")))
            .collect())
    }
}
