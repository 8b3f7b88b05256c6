use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

use epai_domain::{ApiKeyHash, AuthUserId, Email, PartnerId, PartnerName};
use serde_json::Value;
use uuid::Uuid;

use crate::connect::{RecomputeOnIngest, Store};
use crate::error::StoreError;
use crate::prepared::PreparedTransaction;
use crate::queries::named_query;
use crate::stored_json::StoredJson;
use crate::tenant::PartnerRecord;

/// A transaction running as `service_role`, which bypasses row-level security.
///
/// Only the named system paths live here (account creation, the ingest and log writers, the job
/// worker, operator commands). Each takes a partner id that the caller obtained from a verified
/// credential or an operator's command line, never from a request body.
pub struct ServiceRole<'a> {
    pub(crate) tx: PreparedTransaction<'a>,
    pub(crate) recompute: Arc<RecomputeOnIngest>,
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
        let tx = PreparedTransaction::new(conn.transaction().await?);
        tx.execute(named_query!("tenant/enter_service_role"), &[])
            .await?;
        let service = ServiceRole {
            tx,
            recompute: self.recompute.clone(),
        };
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
    pub id: Uuid,
    pub partner_id: PartnerId,
    pub event_type: String,
    pub data: StoredJson,
    pub source: String,
    pub version: String,
    pub metadata: Option<StoredJson>,
    pub occurred_at: DateTime<Utc>,
    /// `None`: the time of the storing transaction.
    pub created_at: Option<DateTime<Utc>>,
}

/// Events as the column arrays of `queries/events/insert.sql`, and the jobs they trigger.
pub(crate) struct EventColumns<'a> {
    ids: Vec<Uuid>,
    partners: Vec<Uuid>,
    event_types: Vec<&'a str>,
    data: Vec<&'a StoredJson>,
    sources: Vec<&'a str>,
    versions: Vec<&'a str>,
    metadata: Vec<Option<&'a StoredJson>>,
    occurred: Vec<DateTime<Utc>>,
    created: Vec<Option<DateTime<Utc>>>,
    recompute_models: &'a [String],
    stored_at: DateTime<Utc>,
    recompute_at: DateTime<Utc>,
    /// Each partner of the events once, in order: whose insight jobs are due.
    distinct_partners: Vec<Uuid>,
}

impl<'a> EventColumns<'a> {
    /// `events`, stored at `now`, making `recompute`'s models due after its debounce.
    pub(crate) fn of<'e: 'a, Events>(
        events: Events,
        recompute: &'a RecomputeOnIngest,
        now: DateTime<Utc>,
    ) -> Self
    where
        Events: IntoIterator<Item = &'e NewEvent>,
        Events::IntoIter: Clone,
    {
        let events = events.into_iter();
        let partners: Vec<Uuid> = events.clone().map(|e| e.partner_id.as_uuid()).collect();
        let mut distinct_partners = partners.clone();
        distinct_partners.sort_unstable();
        distinct_partners.dedup();
        Self {
            ids: events.clone().map(|e| e.id).collect(),
            partners,
            event_types: events.clone().map(|e| e.event_type.as_str()).collect(),
            data: events.clone().map(|e| &e.data).collect(),
            sources: events.clone().map(|e| e.source.as_str()).collect(),
            versions: events.clone().map(|e| e.version.as_str()).collect(),
            metadata: events.clone().map(|e| e.metadata.as_ref()).collect(),
            occurred: events.clone().map(|e| e.occurred_at).collect(),
            created: events.clone().map(|e| e.created_at).collect(),
            recompute_models: &recompute.models,
            stored_at: now,
            recompute_at: crate::queue::after(now, recompute.debounce),
            distinct_partners,
        }
    }

    pub(crate) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 13] {
        [
            &self.ids,
            &self.partners,
            &self.event_types,
            &self.data,
            &self.sources,
            &self.versions,
            &self.metadata,
            &self.occurred,
            &self.created,
            &self.recompute_models,
            &self.stored_at,
            &self.recompute_at,
            &self.distinct_partners,
        ]
    }
}

/// What a key lookup found: the key's row and its partner's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: Uuid,
    pub partner_id: PartnerId,
    pub user_id: Option<AuthUserId>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `false` when the hash matched the previous key of a rotation.
    pub is_current: bool,
    pub previous_key_expires_at: Option<DateTime<Utc>>,
    /// The partner's own requests-per-minute quota, when it has one.
    pub rate_limit_per_minute: Option<i32>,
}

/// The outcome of claiming an idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub enum IdempotencyClaim {
    /// First use: go ahead, then record the response with `complete_idempotency`.
    Claimed,
    /// Used before with the same request: answer as then.
    Replay { status: u16, body: Value },
    /// Used before with a different request.
    Mismatch,
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

    /// Sets the partner's API key quota in requests per minute (0 = unlimited), or with `None`
    /// returns it to the server's default; `NotFound` for an unknown partner.
    pub async fn set_rate_limit(
        &self,
        partner: PartnerId,
        per_minute: Option<u32>,
    ) -> Result<PartnerRecord, StoreError> {
        let per_minute = per_minute.map(i32::try_from).transpose().map_err(|_| {
            StoreError::Invalid(format!("a rate limit must be at most {}", i32::MAX))
        })?;
        let row = self
            .tx
            .query_opt(
                named_query!("partners/set_rate_limit"),
                &[&partner.as_uuid(), &per_minute],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no partner {partner}")))?;
        Ok(PartnerRecord::from_row(&row))
    }

    /// Stores events (of any partners) in a single statement, enqueueing the recomputation of
    /// their partners' insights (see [`Store::recomputing_on_ingest`]).
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let columns = EventColumns::of(events, &self.recompute, Utc::now());
        self.tx
            .execute(named_query!("events/insert"), &columns.params())
            .await?;
        Ok(())
    }

    /// The key whose current or previous hash is `hash`, if any.
    pub async fn find_api_key(&self, hash: &ApiKeyHash) -> Result<Option<StoredKey>, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("api_keys/find_by_hash"), &[&hash.as_str()])
            .await?;
        Ok(row.map(|row| StoredKey {
            key_id: row.get("id"),
            partner_id: PartnerId::new(row.get("partner_id")),
            user_id: row.get::<_, Option<Uuid>>("user_id").map(AuthUserId::new),
            expires_at: row.get("expires_at"),
            is_current: row.get("is_current"),
            previous_key_expires_at: row.get("previous_key_expires_at"),
            rate_limit_per_minute: row.get("rate_limit_per_minute"),
        }))
    }

    /// Records when keys were last used (only ever moves `last_used_at` forward).
    pub async fn touch_api_keys(&self, uses: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = uses.iter().map(|(id, _)| *id).collect();
        let times: Vec<DateTime<Utc>> = uses.iter().map(|(_, at)| *at).collect();
        Ok(self
            .tx
            .execute(named_query!("api_keys/touch"), &[&ids, &times])
            .await?)
    }

    /// Claims `key` for this request, or tells how it was answered before. Blocks while a
    /// concurrent request holds the same key, so two can never both claim it.
    pub async fn claim_idempotency(
        &self,
        partner: PartnerId,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim, StoreError> {
        let claimed = self
            .tx
            .query_opt(
                named_query!("idempotency/claim"),
                &[&partner.as_uuid(), &key, &request_hash],
            )
            .await?
            .is_some();
        if claimed {
            return Ok(IdempotencyClaim::Claimed);
        }
        let row = self
            .tx
            .query_one(
                named_query!("idempotency/find"),
                &[&partner.as_uuid(), &key],
            )
            .await?;
        let stored_hash: String = row.get("request_hash");
        if stored_hash != request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        let status: Option<i32> = row.get("response_status");
        let body: Option<Value> = row.get("response_body");
        match (status, body) {
            (Some(status), Some(body)) => Ok(IdempotencyClaim::Replay {
                status: u16::try_from(status).unwrap_or(200),
                body,
            }),
            _ => Err(StoreError::Other(
                "idempotency key claimed but never completed".into(),
            )),
        }
    }

    pub async fn complete_idempotency(
        &self,
        partner: PartnerId,
        key: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), StoreError> {
        self.tx
            .execute(
                named_query!("idempotency/complete"),
                &[&partner.as_uuid(), &key, &i32::from(status), body],
            )
            .await?;
        Ok(())
    }

    /// Forgets idempotency keys older than `max_age`.
    pub async fn expire_idempotency_keys(&self, max_age: Duration) -> Result<u64, StoreError> {
        Ok(self
            .tx
            .execute(
                named_query!("idempotency/expire"),
                &[&max_age.as_secs_f64()],
            )
            .await?)
    }

    /// The partner owning an insight, to tell a cross-tenant probe from a typo.
    pub async fn insight_owner(&self, insight: Uuid) -> Result<Option<PartnerId>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("insights/owner"), &[&insight])
            .await?
            .map(|row| PartnerId::new(row.get(0))))
    }

    /// The partner owning a request log, if it has one.
    pub async fn log_owner(&self, log: Uuid) -> Result<Option<PartnerId>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("logs/owner"), &[&log])
            .await?
            .and_then(|row| row.get::<_, Option<Uuid>>(0))
            .map(PartnerId::new))
    }
}
