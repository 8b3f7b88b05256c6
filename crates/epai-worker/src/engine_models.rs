//! The engine's models as worker models: per event type of a partner, a volume forecast and an
//! anomaly scan over its daily counts; per partner, churn risk of its users, the attendance of
//! its next event and what makes its leads convert.

use chrono::{DateTime, NaiveDate, Utc};
use epai_engine::anomaly::{SeriesKind, anomaly_insight};
use epai_engine::attendance::{attendance_insight, typical_next_event};
use epai_engine::event_data::{EventData, attendance_record, lead_examples, planned_event};
use epai_engine::forecast::{Horizon, IntervalLevel, volume_forecast_insight};
use epai_engine::lead::lead_scoring_insight;
use epai_engine::risk::{self, DailyActivity, churn_insight};
use epai_engine::{EngineError, InsightContent};
use epai_store::{DailySeries, FeatureRequest, NewInsight, PartnerFeatures};
use serde_json::json;

use crate::models::{InsightModel, ModelError};

/// Days of history the series models read: enough for a few weekly cycles and a backtest.
const HISTORY_DAYS: u32 = 120;
/// Event types with fewer events than this in the window get no insight at all.
const MIN_EVENTS: i64 = 1;

/// Users scored by the churn model, the most recently active first.
const MAX_ENTITIES: u32 = 5000;
/// Days after a reference date without events that count as having churned.
const CHURN_HOLDOUT_DAYS: u32 = 14;
/// Users named in a churn insight.
const TOP_AT_RISK: usize = 10;
/// The latest events of each kind the attendance and lead models learn from.
const TRAINING_EVENTS: u32 = 5000;
/// Subject of the insights a model writes once per partner rather than per event type.
const WHOLE_PARTNER: &str = "all";

fn series_request() -> FeatureRequest {
    FeatureRequest {
        daily_count_days: HISTORY_DAYS,
        ..FeatureRequest::NONE
    }
}

fn one_insight(subject: &str, content: &InsightContent) -> Result<Vec<NewInsight>, ModelError> {
    Ok(vec![NewInsight {
        subject: subject.to_owned(),
        content: serde_json::to_value(content)?,
        metadata: None,
    }])
}

fn event_data<'a>(
    features: &'a PartnerFeatures,
    event_type: &'a str,
) -> impl Iterator<Item = EventData> + 'a {
    features.events_of(event_type).map(|e| EventData {
        occurred_at: e.occurred_at,
        data: e.data.clone(),
    })
}

/// The series worth an insight, from the day of its first event, with that first day.
fn active_series(
    features: &PartnerFeatures,
) -> impl Iterator<Item = (&DailySeries, NaiveDate, Vec<f64>)> {
    features
        .daily_counts
        .iter()
        .filter(|series| series.counts.iter().sum::<i64>() >= MIN_EVENTS)
        .map(|series| {
            let (first_day, values) = series.since_first_event();
            (series, first_day, values)
        })
}

/// One insight per active event type, each computed by `model` from `(event_type, first day,
/// daily counts)` and filed under the event type as its subject.
fn per_event_type(
    features: &PartnerFeatures,
    model: impl Fn(&str, NaiveDate, &[f64]) -> Result<InsightContent, EngineError>,
) -> Result<Vec<NewInsight>, ModelError> {
    active_series(features)
        .map(|(series, first_day, values)| {
            let content = model(&series.event_type, first_day, &values)?;
            Ok(NewInsight {
                subject: series.event_type.clone(),
                content: serde_json::to_value(&content)?,
                metadata: Some(json!({ "event_type": series.event_type })),
            })
        })
        .collect()
}

/// `event_volume_forecast`: the next 14 days of each event type with 80% and 95% intervals.
pub struct VolumeForecast;

impl InsightModel for VolumeForecast {
    fn name(&self) -> &'static str {
        "event_volume_forecast"
    }

    fn features(&self) -> FeatureRequest {
        series_request()
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        let horizon = Horizon::new(14)?;
        let levels = IntervalLevel::defaults();
        per_event_type(features, |event_type, first_day, counts| {
            volume_forecast_insight(event_type, first_day, counts, horizon, &levels, now)
        })
    }
}

/// `anomaly_detection`: unusual days and level shifts in each event type's daily counts.
pub struct AnomalyDetection;

impl InsightModel for AnomalyDetection {
    fn name(&self) -> &'static str {
        "anomaly_detection"
    }

    fn features(&self) -> FeatureRequest {
        series_request()
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        per_event_type(features, |event_type, first_day, counts| {
            anomaly_insight(event_type, first_day, counts, SeriesKind::Counts, now)
        })
    }
}

/// `entity_risk`: which active users are likely to stop, learned from who stopped before.
pub struct EntityRisk;

impl InsightModel for EntityRisk {
    fn name(&self) -> &'static str {
        "entity_risk"
    }

    fn features(&self) -> FeatureRequest {
        FeatureRequest {
            max_entities: MAX_ENTITIES,
            entity_days: HISTORY_DAYS,
            ..FeatureRequest::NONE
        }
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        // A partner whose events name no users has nobody to score.
        if features.entities.is_empty() {
            return Ok(Vec::new());
        }
        let activities: Vec<risk::EntityActivity> = features
            .entities
            .iter()
            .map(|entity| risk::EntityActivity {
                entity_id: entity.entity_id.clone(),
                days: entity
                    .days
                    .iter()
                    .map(|d| DailyActivity {
                        date: d.day,
                        events: u32::try_from(d.events).unwrap_or(u32::MAX),
                    })
                    .collect(),
            })
            .collect();
        let content = churn_insight(
            &activities,
            now.date_naive(),
            CHURN_HOLDOUT_DAYS,
            TOP_AT_RISK,
            now,
        )?;
        one_insight(WHOLE_PARTNER, &content)
    }
}

/// `attendance_forecast`: the expected turnout of the partner's next announced event (an
/// `event_attendance` event dated after today without an attendee count), or of its typical
/// event on its usual weekday when none is announced.
pub struct AttendanceForecast;

impl InsightModel for AttendanceForecast {
    fn name(&self) -> &'static str {
        "attendance_forecast"
    }

    fn features(&self) -> FeatureRequest {
        FeatureRequest {
            event_types: &["event_attendance"],
            events_per_type: TRAINING_EVENTS,
            ..FeatureRequest::NONE
        }
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        let today = now.date_naive();
        let events: Vec<EventData> = event_data(features, "event_attendance").collect();
        let records: Vec<_> = events
            .iter()
            .filter_map(attendance_record)
            .filter(|r| r.event_date <= today)
            .collect();
        let next = events
            .iter()
            .filter_map(|e| planned_event(e, today))
            .min_by_key(|planned| planned.event_date)
            .or_else(|| typical_next_event(&records, today));
        let Some(next) = next else {
            return Ok(Vec::new());
        };
        let content = attendance_insight(&records, &next, now)?;
        one_insight("next_event", &content)
    }
}

/// `lead_scoring`: what makes the partner's leads convert, learned from its `lead` events
/// labelled by later `sales_transaction` events.
pub struct LeadScoring;

impl InsightModel for LeadScoring {
    fn name(&self) -> &'static str {
        "lead_scoring"
    }

    fn features(&self) -> FeatureRequest {
        FeatureRequest {
            event_types: &["lead", "sales_transaction"],
            events_per_type: TRAINING_EVENTS,
            ..FeatureRequest::NONE
        }
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        let leads: Vec<EventData> = event_data(features, "lead").collect();
        if leads.is_empty() {
            return Ok(Vec::new());
        }
        let sales: Vec<EventData> = event_data(features, "sales_transaction").collect();
        let content = lead_scoring_insight(&lead_examples(&leads, &sales), now)?;
        one_insight(WHOLE_PARTNER, &content)
    }
}
