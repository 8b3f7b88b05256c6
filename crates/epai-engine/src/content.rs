//! What an insight says: the text a partner reads plus the numbers behind it.
//!
//! Built from typed structs and serialised with serde; `details` carries each model's own figures
//! (forecast points with intervals, scores, the series behind a chart, backtest results).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::anomaly::AnomalyDetails;
use crate::attendance::AttendanceDetails;
use crate::forecast::ForecastDetails;
use crate::lead::LeadDetails;
use crate::risk::ChurnDetails;

/// A probability-like trust figure, always within 0..=1 (NaN becomes 0).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Confidence(f64);

impl Confidence {
    /// Ceiling for content that admits it has too little data to say anything.
    pub const NOT_ENOUGH_DATA: Confidence = Confidence(0.1);

    pub fn clamped(value: f64) -> Self {
        if value.is_nan() {
            Confidence(0.0)
        } else {
            Confidence(value.clamp(0.0, 1.0))
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Confidence {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&value) {
            Ok(Confidence(value))
        } else {
            Err(format!("confidence must be within 0..=1, got {value}"))
        }
    }
}

impl From<Confidence> for f64 {
    fn from(confidence: Confidence) -> f64 {
        confidence.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightContent {
    pub title: String,
    /// Plain text, no markup.
    pub description: String,
    pub confidence: Confidence,
    pub recommendation: String,
    /// Name of the model that produced the content.
    pub model: String,
    /// Supplied by the caller; the engine never reads the clock.
    pub generated_at: DateTime<Utc>,
    pub details: InsightDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InsightDetails {
    NotEnoughData(NotEnoughData),
    VolumeForecast(ForecastDetails),
    Anomalies(AnomalyDetails),
    ChurnRisk(ChurnDetails),
    Attendance(AttendanceDetails),
    LeadScoring(LeadDetails),
}

/// How much data a model had and how much it needs before it will say anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotEnoughData {
    pub available: usize,
    pub required: usize,
    /// What is being counted: "days", "events", "entities", "leads".
    pub unit: String,
}

impl InsightContent {
    /// Honest content for too little data: no trend is invented, confidence stays low.
    pub fn not_enough_data(
        model: &str,
        subject: &str,
        available: usize,
        required: usize,
        unit: &str,
        generated_at: DateTime<Utc>,
    ) -> Self {
        InsightContent {
            title: format!("Not enough data for {subject}"),
            description: format!(
                "Not enough data yet: {available} {unit} available, {required} needed before \
                 {subject} can be estimated."
            ),
            confidence: Confidence::NOT_ENOUGH_DATA,
            recommendation: format!(
                "Keep sending events; this insight updates once {required} {unit} are available."
            ),
            model: model.to_owned(),
            generated_at,
            details: InsightDetails::NotEnoughData(NotEnoughData {
                available,
                required,
                unit: unit.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn confidence_is_clamped_into_the_unit_interval() {
        assert_eq!(Confidence::clamped(1.7).value(), 1.0);
        assert_eq!(Confidence::clamped(-0.3).value(), 0.0);
        assert_eq!(Confidence::clamped(f64::NAN).value(), 0.0);
    }

    #[test]
    fn not_enough_data_content_round_trips_through_json_with_low_confidence() {
        let generated_at = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
        let content = InsightContent::not_enough_data(
            "event_volume_forecast",
            "page_view",
            5,
            14,
            "days",
            generated_at,
        );
        assert!(content.confidence.value() <= 0.2);
        assert!(content.description.contains("Not enough data"));

        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["details"]["kind"], "not_enough_data");
        assert_eq!(json["confidence"], 0.1);
        assert_eq!(json["generated_at"], "2026-11-20T08:00:00Z");
        let back: InsightContent = serde_json::from_value(json).unwrap();
        assert_eq!(back, content);
    }

    #[test]
    fn confidence_outside_the_unit_interval_is_rejected_when_reading_json() {
        assert!(serde_json::from_str::<Confidence>("1.5").is_err());
        assert!(serde_json::from_str::<Confidence>("0.5").is_ok());
    }
}
