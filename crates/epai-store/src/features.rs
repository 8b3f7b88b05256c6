//! What models read: one partner's events turned into features by SQL (daily counts per event
//! type, per-entity daily activity, the data of the latest events of chosen types), and what
//! they write back: insights, one per (partner, model, subject), replaced in place by each run.

use chrono::{DateTime, NaiveDate, Utc};
use epai_domain::PartnerId;
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::prepared::PreparedTransaction;
use crate::queries::named_query;
use crate::service::ServiceRole;
use crate::tenant::Tenant;

/// Which features a model needs, so a run loads nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureRequest {
    /// Days of daily counts per event type, ending with the day of `now` (UTC); 0 for none.
    pub daily_count_days: u32,
    /// Entities to load daily activity for (most recently active first); 0 for none.
    pub max_entities: u32,
    /// Days of entity activity, ending with the day of `now` (UTC).
    pub entity_days: u32,
    /// Event types whose latest events' data to load.
    pub event_types: &'static [&'static str],
    /// How many of the latest events of each of `event_types` to load.
    pub events_per_type: u32,
}

impl FeatureRequest {
    /// Nothing at all; requests name what they need on top (`..FeatureRequest::NONE`).
    pub const NONE: FeatureRequest = FeatureRequest {
        daily_count_days: 0,
        max_entities: 0,
        entity_days: 0,
        event_types: &[],
        events_per_type: 0,
    };
}

impl Default for FeatureRequest {
    fn default() -> Self {
        Self {
            daily_count_days: 90,
            entity_days: 90,
            ..Self::NONE
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

impl DailySeries {
    /// The counts from the day of the type's first event on, with that day: the zero-filled
    /// days before a partner sent any are not observations.
    pub fn since_first_event(&self) -> (NaiveDate, Vec<f64>) {
        let silent_days = self.counts.iter().take_while(|c| **c == 0).count();
        let values = self.counts[silent_days..]
            .iter()
            .map(|c| *c as f64)
            .collect();
        (
            self.first_day + chrono::Days::new(silent_days as u64),
            values,
        )
    }
}

/// The days one entity (a user id found in event data) was active, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityActivity {
    pub entity_id: String,
    pub days: Vec<ActiveDay>,
}

/// A UTC day with `events` (at least one) of an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveDay {
    pub day: NaiveDate,
    pub events: i64,
}

/// When an event happened and its `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSample {
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

/// Everything a model may read about one partner, as of `as_of`.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerFeatures {
    pub partner_id: PartnerId,
    pub as_of: DateTime<Utc>,
    pub daily_counts: Vec<DailySeries>,
    pub entities: Vec<EntityActivity>,
    /// Per requested type, oldest first.
    pub events: Vec<EventSample>,
}

impl PartnerFeatures {
    /// The loaded events of `event_type`, oldest first.
    pub fn events_of<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a EventSample> {
        self.events
            .iter()
            .filter(move |e| e.event_type == event_type)
    }
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

/// `partner`'s daily counts per event type for the `days` days ending with `last_day`.
async fn daily_counts(
    tx: &PreparedTransaction<'_>,
    partner: PartnerId,
    days: u32,
    last_day: NaiveDate,
) -> Result<Vec<DailySeries>, StoreError> {
    let count =
        i32::try_from(days).map_err(|_| StoreError::Invalid("too many days of counts".into()))?;
    let first_day = last_day - chrono::Days::new(u64::from(days.saturating_sub(1)));
    let rows = tx
        .query(
            named_query!("features/daily_counts"),
            &[&partner.as_uuid(), &first_day, &count],
        )
        .await?;
    let mut series: Vec<DailySeries> = Vec::new();
    for row in rows {
        let event_type: String = row.get("event_type");
        let events: i64 = row.get("events");
        match series.last_mut() {
            Some(last) if last.event_type == event_type => last.counts.push(events),
            _ => series.push(DailySeries {
                event_type,
                first_day,
                counts: vec![events],
            }),
        }
    }
    Ok(series)
}

impl Tenant<'_> {
    /// The caller's own daily counts per event type for the `days` days ending with `last_day`,
    /// as a worker's forecast reads them.
    pub async fn own_daily_counts(
        &self,
        days: u32,
        last_day: NaiveDate,
    ) -> Result<Vec<DailySeries>, StoreError> {
        let partner = self.partner().await?;
        daily_counts(&self.tx, partner.id, days, last_day).await
    }
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
        let daily_counts = if request.daily_count_days > 0 {
            daily_counts(
                &self.tx,
                partner,
                request.daily_count_days,
                now.date_naive(),
            )
            .await?
        } else {
            Vec::new()
        };
        let mut entities: Vec<EntityActivity> = Vec::new();
        if request.max_entities > 0 {
            let last_day = now.date_naive();
            let first_day =
                last_day - chrono::Days::new(u64::from(request.entity_days.saturating_sub(1)));
            let rows = self
                .tx
                .query(
                    named_query!("features/entity_activity"),
                    &[
                        &partner.as_uuid(),
                        &first_day,
                        &last_day,
                        &i64::from(request.max_entities),
                    ],
                )
                .await?;
            for row in rows {
                let entity_id: String = row.get("entity_id");
                let day = ActiveDay {
                    day: row.get("day"),
                    events: row.get("events"),
                };
                match entities.last_mut() {
                    Some(entity) if entity.entity_id == entity_id => entity.days.push(day),
                    _ => entities.push(EntityActivity {
                        entity_id,
                        days: vec![day],
                    }),
                }
            }
        }
        let mut events = Vec::new();
        if request.events_per_type > 0 && !request.event_types.is_empty() {
            let types: Vec<&str> = request.event_types.to_vec();
            let rows = self
                .tx
                .query(
                    named_query!("features/event_data"),
                    &[
                        &partner.as_uuid(),
                        &types,
                        &i64::from(request.events_per_type),
                        &now,
                    ],
                )
                .await?;
            events = rows
                .iter()
                .map(|row| EventSample {
                    event_type: row.get("event_type"),
                    occurred_at: row.get("occurred_at"),
                    data: row.get("data"),
                })
                .collect();
        }
        Ok(PartnerFeatures {
            partner_id: partner,
            as_of: now,
            daily_counts,
            entities,
            events,
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
