//! What models read: one partner's events turned into features by SQL (daily counts per event
//! type, per-entity recency and frequency), and what they write back: insights, one per
//! (partner, model, subject), replaced in place by each run.

use chrono::{DateTime, NaiveDate, Utc};
use epai_domain::PartnerId;
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;

/// Which features a model needs, so a run loads nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureRequest {
    /// Days of daily counts per event type, ending with the day of `now` (UTC); 0 for none.
    pub daily_count_days: u32,
    /// Entities to load recency and frequency for (most recently active first); 0 for none.
    pub max_entities: u32,
    /// Days of events the entity figures cover, ending at `now`.
    pub entity_days: u32,
}

impl Default for FeatureRequest {
    fn default() -> Self {
        Self {
            daily_count_days: 90,
            max_entities: 0,
            entity_days: 90,
        }
    }
}

/// One event type's daily counts, oldest day first, with every day present (zero-filled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailySeries {
    pub event_type: String,
    pub first_day: NaiveDate,
    pub counts: Vec<i64>,
}

/// How recently and how often one entity (a user id found in event data) was active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityActivity {
    pub entity_id: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub events: i64,
    pub active_days: i64,
}

/// Everything a model may read about one partner, as of `as_of`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerFeatures {
    pub partner_id: PartnerId,
    pub as_of: DateTime<Utc>,
    pub daily_counts: Vec<DailySeries>,
    pub entities: Vec<EntityActivity>,
}

/// An insight a model computed. `subject` names what it is about (an event type, "all"), so the
/// next run of the same model replaces it instead of adding another.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInsight {
    pub subject: String,
    /// At least `title`, `description`, `confidence` (0..1) and `recommendation`.
    pub content: Value,
    pub metadata: Option<Value>,
}

impl ServiceRole<'_> {
    /// The features `request` names for `partner`, as of `now`.
    #[tracing::instrument(skip_all, fields(partner.id = %partner))]
    pub async fn partner_features(
        &self,
        partner: PartnerId,
        request: FeatureRequest,
        now: DateTime<Utc>,
    ) -> Result<PartnerFeatures, StoreError> {
        let mut daily_counts: Vec<DailySeries> = Vec::new();
        if request.daily_count_days > 0 {
            let days = i32::try_from(request.daily_count_days)
                .map_err(|_| StoreError::Invalid("too many days of counts".into()))?;
            let first_day =
                now.date_naive() - chrono::Days::new(u64::from(request.daily_count_days - 1));
            let rows = self
                .tx
                .query(
                    named_query!("features/daily_counts"),
                    &[&partner.as_uuid(), &first_day, &days],
                )
                .await?;
            for row in rows {
                let event_type: String = row.get("event_type");
                let count: i64 = row.get("events");
                match daily_counts.last_mut() {
                    Some(series) if series.event_type == event_type => series.counts.push(count),
                    _ => daily_counts.push(DailySeries {
                        event_type,
                        first_day,
                        counts: vec![count],
                    }),
                }
            }
        }
        let mut entities = Vec::new();
        if request.max_entities > 0 {
            let since = now - chrono::Duration::days(i64::from(request.entity_days));
            let rows = self
                .tx
                .query(
                    named_query!("features/entity_activity"),
                    &[
                        &partner.as_uuid(),
                        &since,
                        &now,
                        &i64::from(request.max_entities),
                    ],
                )
                .await?;
            entities = rows
                .iter()
                .map(|row| EntityActivity {
                    entity_id: row.get("entity_id"),
                    first_seen: row.get("first_seen"),
                    last_seen: row.get("last_seen"),
                    events: row.get("events"),
                    active_days: row.get("active_days"),
                })
                .collect();
        }
        Ok(PartnerFeatures {
            partner_id: partner,
            as_of: now,
            daily_counts,
            entities,
        })
    }

    /// Writes `insight` of `model` for `partner` at `now`: a new row, or the one about the same
    /// subject updated in place, and queues `insight.created` or `insight.updated` for the
    /// partner's webhooks; a recomputation with the same answer (only `generated_at` moved)
    /// refreshes the row without a webhook message. `NotFound` when the catalogue has no such
    /// model.
    #[tracing::instrument(skip_all, fields(partner.id = %partner, model))]
    pub async fn upsert_insight(
        &self,
        partner: PartnerId,
        model: &str,
        insight: &NewInsight,
        now: DateTime<Utc>,
    ) -> Result<Uuid, StoreError> {
        let row = self
            .tx
            .query_opt(
                named_query!("insights/upsert"),
                &[
                    &partner.as_uuid(),
                    &model,
                    &insight.subject,
                    &insight.content,
                    &insight.metadata,
                    &now,
                ],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no model named {model}")))?;
        let id: Uuid = row.get("id");
        let created: bool = row.get("created");
        let changed: bool = row.get("changed");
        // In the same transaction: a committed change is announced to webhooks at least once.
        if created || changed {
            self.announce_insight(partner, id, created, now).await?;
        }
        Ok(id)
    }
}
