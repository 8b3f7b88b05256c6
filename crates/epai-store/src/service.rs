use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use epai_domain::{Email, PartnerId, PartnerName};
use serde_json::Value;
use uuid::Uuid;

use crate::connect::Store;
use crate::error::StoreError;
use crate::queries::named_query;
use crate::tenant::PartnerRecord;

/// A transaction running as `service_role`, which bypasses row-level security.
///
/// Only the named system paths live here (account creation, the ingest and log writers, the job
/// worker, operator commands). Each takes a partner id that the caller obtained from a verified
/// credential or an operator's command line, never from a request body.
pub struct ServiceRole<'a> {
    pub(crate) tx: Transaction<'a>,
}

impl Store {
    /// Runs `work` in one transaction as `service_role`: row-level security does not apply, so
    /// every statement in here must name the partner it acts for.
    #[tracing::instrument(skip_all)]
    pub async fn as_service_role<T>(
        &self,
        work: impl AsyncFnOnce(&ServiceRole<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        tx.execute(named_query!("tenant/enter_service_role"), &[])
            .await?;
        let service = ServiceRole { tx };
        let outcome = work(&service).await?;
        service.tx.commit().await?;
        Ok(outcome)
    }
}

/// A partner account to create: an `auth.users` row and its `partners` row.
#[derive(Clone, Debug)]
pub struct NewPartner {
    pub name: PartnerName,
    pub email: Email,
    /// An argon2id PHC string, or `None` for an account that only uses API keys.
    pub password_hash: Option<String>,
}

/// One event as stored in `ingestion_events`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub data: Value,
    pub source: String,
    pub version: String,
    pub metadata: Option<Value>,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl ServiceRole<'_> {
    /// Creates the user and its partner; `Conflict` when the email already has an account.
    pub async fn create_partner(&self, new: &NewPartner) -> Result<PartnerRecord, StoreError> {
        let user_row = self
            .tx
            .query_one(
                named_query!("partners/insert_user"),
                &[&new.email.as_str(), &new.password_hash],
            )
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("an account for {} already exists", new.email))
                }
                other => other,
            })?;
        let user_id: Uuid = user_row.get(0);
        let row = self
            .tx
            .query_one(
                named_query!("partners/insert"),
                &[&user_id, &new.name.as_str(), &new.email.as_str()],
            )
            .await?;
        Ok(PartnerRecord::from_row(&row))
    }

    /// A partner by id, or by the email it was registered with.
    pub async fn find_partner(&self, id_or_email: &str) -> Result<PartnerRecord, StoreError> {
        let id = id_or_email.parse::<Uuid>().ok();
        let row = self
            .tx
            .query_opt(
                named_query!("partners/find_by_id_or_email"),
                &[&id, &id_or_email],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no partner {id_or_email}")))?;
        Ok(PartnerRecord::from_row(&row))
    }

    /// Stores events for one partner in a single statement.
    pub async fn insert_events(
        &self,
        partner: PartnerId,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        let event_types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let versions: Vec<&str> = events.iter().map(|e| e.version.as_str()).collect();
        let metadata: Vec<Option<&Value>> = events.iter().map(|e| e.metadata.as_ref()).collect();
        let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
        let created: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at).collect();
        Ok(self
            .tx
            .execute(
                named_query!("events/insert_many"),
                &[
                    &partner.as_uuid(),
                    &event_types,
                    &data,
                    &sources,
                    &versions,
                    &metadata,
                    &occurred,
                    &created,
                ],
            )
            .await?)
    }
}
