//! Insight webhooks: the partners' endpoints (tenant rows under row-level security) and the
//! queue of deliveries to them (`migrations/V10__webhooks.sql`), claimed with
//! `FOR UPDATE SKIP LOCKED` like the insight jobs, with a cap on deliveries in flight per
//! endpoint and per partner so that one slow receiver cannot hold every worker.
//!
//! Messages are queued in the transaction that makes them true (an insight written, a test
//! requested), so a committed change is delivered at least once. Signing secrets arrive and
//! leave sealed: the store never sees one in plaintext. Every decision takes the time as a
//! parameter (`now`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_domain::{PartnerId, WebhookEventType, WebhookMessage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;
use crate::tenant::{InsightRecord, Tenant};

/// Sent (by a trigger) whenever deliveries are queued.
pub const DELIVERIES_CHANNEL: &str = "epai_webhook_deliveries";

/// Attempts a delivery gets before it is dead (the schedule between them is the delivery
/// worker's); a test message gets one.
pub const DELIVERY_ATTEMPTS: i32 = 10;

/// A signing secret sealed by the server, and which server key sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub ciphertext: Vec<u8>,
    pub key_id: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(key {})", self.key_id)
    }
}

/// A webhook as its partner sees it; its secrets are never part of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<WebhookEventType>,
    /// `false`: nothing is delivered (test messages excepted).
    pub enabled: bool,
    /// Until then, messages are also signed with the secret replaced by the last rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// Since when every attempt has failed; `null` after a success.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// `failing` when EPAI switched the webhook off after days of failures.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookRecord {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let event_types: Vec<String> = row.get("event_types");
        Self {
            id: row.get("id"),
            url: row.get("url"),
            description: row.get("description"),
            event_types: event_types
                .iter()
                .filter_map(|name| WebhookEventType::from_stored(name))
                .collect(),
            enabled: row.get("enabled"),
            previous_secret_expires_at: row.get("previous_secret_expires_at"),
            secret_rotated_at: row.get("secret_rotated_at"),
            failing_since: row.get("failing_since"),
            last_success_at: row.get("last_success_at"),
            disabled_reason: row.get("disabled_reason"),
            disabled_at: row.get("disabled_at"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }

    /// Whether EPAI (not the partner) switched it off because it kept failing.
    pub fn disabled_for_failures(&self) -> bool {
        !self.enabled && self.disabled_reason.as_deref() == Some(DISABLED_FOR_FAILURES)
    }
}

/// `disabled_reason` of a webhook EPAI switched off (see `webhook_deliveries/fail.sql`).
const DISABLED_FOR_FAILURES: &str = "failing";

/// A webhook to create, with its id chosen by the caller (the secret is sealed to it).
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<WebhookEventType>,
    pub enabled: bool,
    pub secret: SealedSecret,
}

/// What to change on a webhook; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<WebhookEventType>>,
    pub enabled: Option<bool>,
}

fn type_names(types: &[WebhookEventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

/// Where a delivery is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Available,
    /// Being sent.
    Running,
    /// Failed; waiting for another attempt at `next_attempt_at`.
    Retryable,
    Succeeded,
    /// Every attempt failed.
    Dead,
    /// The webhook was switched off before it was sent.
    Cancelled,
}

impl DeliveryState {
    fn from_stored(name: &str) -> Self {
        match name {
            "available" => Self::Available,
            "running" => Self::Running,
            "retryable" => Self::Retryable,
            "succeeded" => Self::Succeeded,
            "dead" => Self::Dead,
            _ => Self::Cancelled,
        }
    }
}

/// One attempt at a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when it gave none (refused, timed out, unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i32>,
    /// Why it failed; absent for a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A delivery as its partner sees it: one message to one webhook and how its attempts went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The message id: the `webhook-id` header and the payload's `id`, the same on every retry.
    pub message_id: String,
    pub event_type: WebhookEventType,
    pub status: DeliveryState,
    /// Attempts made so far.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the next attempt is due, while one is.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status.
    pub response_status: Option<i32>,
    /// The last attempt's time to a complete answer, in milliseconds.
    pub latency_ms: Option<i32>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Every attempt, oldest first.
    pub attempt_history: Vec<DeliveryAttempt>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl DeliveryRecord {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let status = DeliveryState::from_stored(row.get("state"));
        let event_type: &str = row.get("event_type");
        let history: serde_json::Value = row.get("attempts");
        Self {
            id: row.get("id"),
            webhook_id: row.get("webhook_id"),
            message_id: row.get("message_id"),
            event_type: WebhookEventType::from_stored(event_type).unwrap_or(WebhookEventType::Test),
            status,
            attempts: row.get("attempt"),
            max_attempts: row.get("max_attempts"),
            next_attempt_at: matches!(status, DeliveryState::Available | DeliveryState::Retryable)
                .then(|| row.get("scheduled_at")),
            last_attempt_at: row.get("attempted_at"),
            response_status: row.get("response_status"),
            latency_ms: row.get("latency_ms"),
            error: row.get("last_error"),
            attempt_history: serde_json::from_value(history).unwrap_or_default(),
            created_at: row.get("created_at"),
            finished_at: row.get("finished_at"),
        }
    }
}

impl Tenant<'_> {
    /// The partner's webhooks, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        let rows = self.tx.query(named_query!("webhooks/list"), &[]).await?;
        Ok(rows.iter().map(WebhookRecord::from_row).collect())
    }

    /// One webhook; `None` when it does not exist or belongs to another partner.
    pub async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("webhooks/one"), &[&id])
            .await?
            .as_ref()
            .map(WebhookRecord::from_row))
    }

    /// Creates a webhook for the user's partner; `Conflict` when it already has `limit`.
    pub async fn create_webhook(
        &self,
        new: &NewWebhook,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<WebhookRecord, StoreError> {
        self.partner().await?;
        let row = self
            .tx
            .query_opt(
                named_query!("webhooks/insert"),
                &[
                    &new.id,
                    &new.url,
                    &new.description,
                    &type_names(&new.event_types),
                    &new.enabled,
                    &new.secret.ciphertext,
                    &limit,
                    &new.secret.key_id,
                    &now,
                ],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!("a partner has at most {limit} webhooks"))
            })?;
        Ok(WebhookRecord::from_row(&row))
    }

    /// Applies `change` to a webhook; `None` when the partner has no such webhook.
    pub async fn update_webhook(
        &self,
        id: Uuid,
        change: &WebhookChange,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let event_types = change.event_types.as_deref().map(type_names);
        let description = change.description.clone().flatten();
        Ok(self
            .tx
            .query_opt(
                named_query!("webhooks/update"),
                &[
                    &id,
                    &change.url,
                    &description,
                    &change.description.is_some(),
                    &event_types,
                    &change.enabled,
                    &now,
                ],
            )
            .await?
            .as_ref()
            .map(WebhookRecord::from_row))
    }

    /// Replaces a webhook's secret with `secret` at `now`; the replaced one keeps signing until
    /// `previous_until` (not at all when that is not after `now`).
    pub async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        secret: &SealedSecret,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        Ok(self
            .tx
            .query_opt(
                named_query!("webhooks/rotate_secret"),
                &[
                    &id,
                    &secret.ciphertext,
                    &secret.key_id,
                    &previous_until,
                    &now,
                ],
            )
            .await?
            .as_ref()
            .map(WebhookRecord::from_row))
    }

    /// Deletes a webhook and its deliveries; `false` when the partner has no such webhook.
    pub async fn delete_webhook(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("webhooks/delete"), &[&id])
            .await?
            .is_some())
    }

    /// Deliveries to one of the partner's webhooks, newest first, after the `before` cursor
    /// (`(created_at, id)` of the last delivery of the previous page).
    pub async fn webhook_deliveries(
        &self,
        webhook: Uuid,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let (before_at, before_id) = before.unzip();
        let rows = self
            .tx
            .query(
                named_query!("webhook_deliveries/list"),
                &[&webhook, &before_at, &before_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(DeliveryRecord::from_row).collect())
    }
}

/// A delivery a worker holds: send `body` to `url`, signed with the webhook's secrets. Held
/// until `locked_until`; after that another worker may claim it again.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub id: Uuid,
    pub partner_id: PartnerId,
    pub webhook_id: Uuid,
    pub message_id: String,
    pub event_type: String,
    pub body: String,
    /// 1 for the first.
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker: String,
    pub locked_until: DateTime<Utc>,
    pub url: String,
    pub secret: SealedSecret,
    /// The secret a rotation replaced, and until when it still signs.
    pub previous_secret: Option<(SealedSecret, DateTime<Utc>)>,
}

/// How a failed attempt was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// When the next attempt is due; `None` when the delivery used its last one (it is dead).
    pub retry_at: Option<DateTime<Utc>>,
    /// The webhook had been failing for long enough that EPAI switched it off.
    pub webhook_switched_off: bool,
}

/// What an `api_key.expiring` message says (the key itself is never part of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpiringKey {
    pub id: Uuid,
    pub key_prefix: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A delivery buried because its last attempt never finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuriedDelivery {
    pub id: Uuid,
    pub partner_id: PartnerId,
    pub webhook_id: Uuid,
    pub message_id: String,
    pub attempts: i32,
}

fn attempt_json(attempt: &DeliveryAttempt) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(attempt).map_err(|e| StoreError::Other(e.to_string()))
}

impl ServiceRole<'_> {
    /// The partner owning a webhook, to tell a cross-tenant probe from a typo.
    pub async fn webhook_owner(&self, webhook: Uuid) -> Result<Option<PartnerId>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("webhooks/owner"), &[&webhook])
            .await?
            .map(|row| PartnerId::new(row.get(0))))
    }

    /// Whether any webhook of `partner` that is on subscribes to `kind`.
    pub async fn has_webhook_subscribers(
        &self,
        partner: PartnerId,
        kind: WebhookEventType,
    ) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .query_one(
                named_query!("webhooks/subscribed"),
                &[&partner.as_uuid(), &kind.as_str()],
            )
            .await?
            .get(0))
    }

    /// Queues `message` for every webhook of `partner` that is on and subscribes to its type,
    /// due at `now`; returns how many deliveries were added.
    pub async fn enqueue_webhook_message<T: Serialize>(
        &self,
        partner: PartnerId,
        message: &WebhookMessage<T>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(self
            .tx
            .execute(
                named_query!("webhook_deliveries/enqueue"),
                &[
                    &partner.as_uuid(),
                    &message.id,
                    &message.kind.as_str(),
                    &message.to_body(),
                    &now,
                    &DELIVERY_ATTEMPTS,
                ],
            )
            .await?)
    }

    /// Queues a test `message` for `webhook` of `partner` (tried once, even when the webhook is
    /// off); `None` when the partner has no such webhook.
    pub async fn enqueue_test_delivery<T: Serialize>(
        &self,
        partner: PartnerId,
        webhook: Uuid,
        message: &WebhookMessage<T>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(self
            .tx
            .query_opt(
                named_query!("webhook_deliveries/enqueue_test"),
                &[
                    &partner.as_uuid(),
                    &webhook,
                    &message.id,
                    &message.to_body(),
                    &now,
                ],
            )
            .await?
            .as_ref()
            .map(DeliveryRecord::from_row))
    }

    /// Takes the next delivery due at `now` (or one abandoned by a worker whose visibility
    /// timeout passed) for `worker`, holding it for `visibility`, unless its webhook already
    /// has `per_webhook` or its partner `per_partner` deliveries in flight.
    #[tracing::instrument(skip_all, fields(worker))]
    pub async fn claim_delivery(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        visibility: Duration,
        per_webhook: i64,
        per_partner: i64,
    ) -> Result<Option<ClaimedDelivery>, StoreError> {
        let row = self
            .tx
            .query_opt(
                named_query!("webhook_deliveries/claim"),
                &[
                    &worker,
                    &now,
                    &crate::queue::after(now, visibility),
                    &per_webhook,
                    &per_partner,
                ],
            )
            .await?;
        Ok(row.map(|row| {
            let previous = row
                .get::<_, Option<Vec<u8>>>("previous_secret_ciphertext")
                .zip(row.get::<_, Option<String>>("previous_secret_key_id"))
                .zip(row.get::<_, Option<DateTime<Utc>>>("previous_secret_expires_at"))
                .map(|((ciphertext, key_id), until)| (SealedSecret { ciphertext, key_id }, until));
            ClaimedDelivery {
                id: row.get("id"),
                partner_id: PartnerId::new(row.get("partner_id")),
                webhook_id: row.get("webhook_id"),
                message_id: row.get("message_id"),
                event_type: row.get("event_type"),
                body: row.get("body"),
                attempt: row.get("attempt"),
                max_attempts: row.get("max_attempts"),
                worker: worker.to_owned(),
                locked_until: row.get("locked_until"),
                url: row.get("url"),
                secret: SealedSecret {
                    ciphertext: row.get("secret_ciphertext"),
                    key_id: row.get("secret_key_id"),
                },
                previous_secret: previous,
            }
        }))
    }

    /// Records a 2xx answer to `delivery`; `false` when its worker no longer held it.
    pub async fn succeed_delivery(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .query_one(
                named_query!("webhook_deliveries/succeed"),
                &[
                    &delivery.id,
                    &delivery.worker,
                    &delivery.attempt,
                    &now,
                    &attempt.response_status,
                    &attempt.latency_ms,
                    &attempt_json(attempt)?,
                ],
            )
            .await?
            .get(0))
    }

    /// Records a failed attempt at `delivery`: it is retried at `retry_at`, or dead when it has
    /// no attempt left; its webhook is switched off when it has been failing since
    /// `switch_off_if_failing_since` or earlier. `None` when its worker no longer held it.
    pub async fn fail_delivery(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        retry_at: DateTime<Utc>,
        switch_off_if_failing_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeliveryFailure>, StoreError> {
        let row = self
            .tx
            .query_opt(
                named_query!("webhook_deliveries/fail"),
                &[
                    &delivery.id,
                    &delivery.worker,
                    &delivery.attempt,
                    &now,
                    &retry_at,
                    &attempt_json(attempt)?,
                    &attempt.response_status,
                    &attempt.latency_ms,
                    &attempt.error,
                    &switch_off_if_failing_since,
                ],
            )
            .await?;
        Ok(row.map(|row| DeliveryFailure {
            retry_at: (row.get::<_, &str>("state") == "retryable").then(|| row.get("scheduled_at")),
            webhook_switched_off: row.get("switched_off"),
        }))
    }

    /// When `claim_delivery` will next find something: the earliest due delivery or lock expiry.
    pub async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .tx
            .query_one(named_query!("webhook_deliveries/next_due"), &[])
            .await?
            .get(0))
    }

    /// Buries running deliveries whose last attempt outlived its visibility timeout.
    pub async fn bury_abandoned_deliveries(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<BuriedDelivery>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("webhook_deliveries/bury_abandoned"), &[&now])
            .await?;
        Ok(rows
            .iter()
            .map(|row| BuriedDelivery {
                id: row.get("id"),
                partner_id: PartnerId::new(row.get("partner_id")),
                webhook_id: row.get("webhook_id"),
                message_id: row.get("message_id"),
                attempts: row.get("attempt"),
            })
            .collect())
    }

    /// Deletes deliveries that finished more than `retention` before `now`; returns how many.
    pub async fn prune_finished_deliveries(
        &self,
        retention: Duration,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let before = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(self
            .tx
            .execute(
                named_query!("webhook_deliveries/prune_finished"),
                &[&before],
            )
            .await?)
    }

    /// Queues `api_key.expiring` for every key expiring within `warning` of `now` whose partner
    /// subscribes to it, once per key expiry; returns how many keys were announced.
    pub async fn announce_expiring_keys(
        &self,
        warning: Duration,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let rows = self
            .tx
            .query(
                named_query!("api_keys/announce_expiry"),
                &[&now, &crate::queue::after(now, warning)],
            )
            .await?;
        for row in &rows {
            let key = ExpiringKey {
                id: row.get("id"),
                key_prefix: row.get("key_prefix"),
                expires_at: row.get("expires_at"),
            };
            let partner = PartnerId::new(row.get("partner_id"));
            let message = WebhookMessage::new(
                WebhookEventType::ApiKeyExpiring,
                now,
                serde_json::json!({ "api_key": key }),
            );
            self.enqueue_webhook_message(partner, &message, now).await?;
        }
        Ok(rows.len())
    }

    /// One insight of any partner, as the API returns it.
    async fn insight_record(&self, id: Uuid) -> Result<Option<InsightRecord>, StoreError> {
        Ok(self
            .tx
            .query_opt(named_query!("insights/one"), &[&id])
            .await?
            .as_ref()
            .map(InsightRecord::from_row))
    }

    /// Queues `insight.created` or `insight.updated` for the partner's subscribed webhooks,
    /// with the insight exactly as the API returns it. Called in the transaction that wrote it.
    pub(crate) async fn announce_insight(
        &self,
        partner: PartnerId,
        insight: Uuid,
        created: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let kind = if created {
            WebhookEventType::InsightCreated
        } else {
            WebhookEventType::InsightUpdated
        };
        if !self.has_webhook_subscribers(partner, kind).await? {
            return Ok(());
        }
        let Some(record) = self.insight_record(insight).await? else {
            return Ok(());
        };
        let message = WebhookMessage::new(kind, now, record);
        self.enqueue_webhook_message(partner, &message, now).await?;
        Ok(())
    }
}
