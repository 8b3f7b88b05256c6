//! The engine's series models as worker models: per event type of a partner, a volume forecast
//! and an anomaly scan over its daily counts.

use chrono::{DateTime, Days, NaiveDate, Utc};
use epai_engine::anomaly::{SeriesKind, anomaly_insight};
use epai_engine::forecast::{Horizon, IntervalLevel, volume_forecast_insight};
use epai_engine::{EngineError, InsightContent};
use epai_store::{DailySeries, FeatureRequest, NewInsight, PartnerFeatures};
use serde_json::json;

use crate::models::{InsightModel, ModelError};

/// Days of history the series models read: enough for a few weekly cycles and a backtest.
const HISTORY_DAYS: u32 = 120;
/// Event types with fewer events than this in the window get no insight at all.
const MIN_EVENTS: i64 = 1;

fn series_request() -> FeatureRequest {
    FeatureRequest {
        daily_count_days: HISTORY_DAYS,
        max_entities: 0,
        entity_days: 0,
    }
}

/// The series worth an insight, from the day of its first event (the zero-filled days before
/// the partner sent anything are not observations), with that first day.
fn active_series(
    features: &PartnerFeatures,
) -> impl Iterator<Item = (&DailySeries, NaiveDate, Vec<f64>)> {
    features
        .daily_counts
        .iter()
        .filter(|series| series.counts.iter().sum::<i64>() >= MIN_EVENTS)
        .map(|series| {
            let silent_days = series.counts.iter().take_while(|c| **c == 0).count();
            let first_day = series.first_day + Days::new(silent_days as u64);
            let values = series.counts[silent_days..]
                .iter()
                .map(|c| *c as f64)
                .collect();
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
