//! Attendance forecast, the original product's regression model, learned per partner from its
//! own `event_attendance` history.
//!
//! The fill rate (attendees / capacity) follows a logistic GLM on ticket price, marketing budget,
//! capacity, weekend, lead time, genre and venue. It is fitted as a quasi-binomial model: a first
//! fit measures how much fill rates scatter around the curve (the dispersion, shrunk towards a
//! typical value so a handful of events cannot claim precision), a second fit weighs events by
//! that dispersion. A Gaussian prior keeps the average fill near 60% and every effect near zero
//! until the data say otherwise, so with two events the interval is wide and with hundreds it
//! narrows to the real event-to-event scatter. Intervals combine the coefficients' posterior
//! uncertainty (Laplace approximation) with that scatter, on the logit scale.

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::content::{Confidence, InsightContent, InsightDetails};
use crate::error::EngineError;
use crate::logistic::{self, LogisticModel, Prior, holdout_split, logit, sigmoid};
use crate::series::{self, normal_quantile, round_to};

pub const MODEL_NAME: &str = "attendance_forecast";
/// Past events needed before the insight speaks; predictions work from one.
pub const MIN_EVENTS: usize = 5;
/// Held-out events needed before the accuracy figures mean anything.
const MIN_EVENTS_FOR_EVALUATION: usize = 12;
const PRIOR_FILL_RATE: f64 = 0.6;
const PRIOR_INTERCEPT_SD: f64 = 1.5;
const PRIOR_EFFECT_SD: f64 = 0.5;
/// Typical scatter of fill rates around the curve (quasi-binomial dispersion) and how many
/// events' worth of belief it carries.
const PRIOR_DISPERSION: f64 = 0.05;
const PRIOR_DISPERSION_EVENTS: f64 = 3.0;
/// Features are logs or 0/1 flags: half a unit (±65% in price, budget or capacity) is the
/// smallest spread an effect is measured against.
const FEATURE_SCALE_FLOOR: f64 = 0.5;
const NUMERIC_FEATURES: [&str; 5] = [
    "ticket price",
    "marketing budget",
    "venue capacity",
    "weekend",
    "lead time",
];

/// One past event from `event_attendance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceRecord {
    pub venue: String,
    pub event_date: NaiveDate,
    pub genre: String,
    pub ticket_price: f64,
    pub marketing_budget: f64,
    pub capacity: u32,
    pub attendee_count: u32,
    /// Days between announcement (or first sale) and the event, when known.
    pub lead_time_days: Option<u32>,
}

/// The original `/predict` attendance inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceQuery {
    pub venue: String,
    pub event_date: NaiveDate,
    pub genre: String,
    pub ticket_price: f64,
    pub marketing_budget: f64,
    pub venue_capacity: u32,
    pub lead_time_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceInterval {
    pub level: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendancePrediction {
    /// Expected attendees.
    pub prediction: f64,
    pub fill_rate: f64,
    /// Attendee ranges at 80% and 95%.
    pub intervals: Vec<AttendanceInterval>,
    pub confidence: Confidence,
    pub explanation: String,
}

/// What the model looks at, whether the event is past or planned.
struct EventFacts<'a> {
    venue: &'a str,
    event_date: NaiveDate,
    genre: &'a str,
    ticket_price: f64,
    marketing_budget: f64,
    capacity: u32,
    lead_time_days: Option<u32>,
}

impl AttendanceRecord {
    fn facts(&self) -> EventFacts<'_> {
        EventFacts {
            venue: &self.venue,
            event_date: self.event_date,
            genre: &self.genre,
            ticket_price: self.ticket_price,
            marketing_budget: self.marketing_budget,
            capacity: self.capacity,
            lead_time_days: self.lead_time_days,
        }
    }
}

impl AttendanceQuery {
    fn facts(&self) -> EventFacts<'_> {
        EventFacts {
            venue: &self.venue,
            event_date: self.event_date,
            genre: &self.genre,
            ticket_price: self.ticket_price,
            marketing_budget: self.marketing_budget,
            capacity: self.venue_capacity,
            lead_time_days: self.lead_time_days,
        }
    }
}

/// Accuracy on events held out of the fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceEvaluation {
    pub held_out: usize,
    pub fill_rate_mae: f64,
    /// Share of held-out fill rates inside their 80% interval.
    pub coverage_80: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceModel {
    pub events: usize,
    pub model: LogisticModel,
    /// Inverse of the posterior precision of the coefficients.
    pub covariance: Vec<Vec<f64>>,
    pub dispersion: f64,
    pub genres: Vec<String>,
    pub venues: Vec<String>,
    /// Stand-in for unknown lead times: the median of the known ones.
    pub typical_lead_time_days: f64,
    pub evaluation: Option<AttendanceEvaluation>,
}

/// `details` of an attendance insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceDetails {
    pub query: AttendanceQuery,
    pub prediction: AttendancePrediction,
    pub events: usize,
    pub dispersion: f64,
    pub evaluation: Option<AttendanceEvaluation>,
    /// Past fill rates by date, for the chart.
    pub history: Vec<series::DatedValue>,
}

/// Learns the fill-rate model from past events, evaluating it on a held-out quarter when there
/// are enough events.
pub fn train_attendance_model(
    records: &[AttendanceRecord],
) -> Result<AttendanceModel, EngineError> {
    if records.is_empty() {
        return Err(EngineError::TooShort { needed: 1, got: 0 });
    }
    for record in records {
        validate_money("ticket price", record.ticket_price)?;
        validate_money("marketing budget", record.marketing_budget)?;
        if record.capacity == 0 {
            return Err(EngineError::InvalidFeature {
                field: "capacity",
                got: 0.0,
            });
        }
    }
    let evaluation = (records.len() >= MIN_EVENTS_FOR_EVALUATION).then(|| {
        let (train, held_out) = holdout_split(records.len());
        let train_records: Vec<AttendanceRecord> =
            train.iter().map(|i| records[*i].clone()).collect();
        fit_model(&train_records, None)
            .map(|model| model.evaluate(held_out.iter().map(|i| &records[*i])))
    });
    let evaluation = evaluation.transpose()?;
    fit_model(records, evaluation)
}

impl AttendanceModel {
    pub fn predict(&self, query: &AttendanceQuery) -> Result<AttendancePrediction, EngineError> {
        validate_money("ticket price", query.ticket_price)?;
        validate_money("marketing budget", query.marketing_budget)?;
        if query.venue_capacity == 0 {
            return Err(EngineError::InvalidFeature {
                field: "venue capacity",
                got: 0.0,
            });
        }
        let capacity = f64::from(query.venue_capacity);
        let features = self.features(&query.facts());
        let (fill_rate, bounds) = self.fill_rate_with_bounds(&features, &[80.0, 95.0]);
        let intervals: Vec<AttendanceInterval> = bounds
            .iter()
            .map(|(level, lower, upper)| AttendanceInterval {
                level: *level,
                lower: (lower * capacity).round(),
                upper: (upper * capacity).round(),
            })
            .collect();
        let width_80 = bounds[0].2 - bounds[0].1;
        let confidence = Confidence::clamped(self.confidence(width_80));
        let prediction = (fill_rate * capacity).round();
        let explanation = format!(
            "Expect about {prediction:.0} of {} seats ({:.0}%) for this {} event on a {} at {}, \
             based on {} past events; 80% range {:.0}–{:.0}. {}",
            query.venue_capacity,
            fill_rate * 100.0,
            query.genre,
            series::weekday_name(query.event_date.weekday()),
            query.venue,
            self.events,
            intervals[0].lower,
            intervals[0].upper,
            self.main_driver(&features),
        );
        Ok(AttendancePrediction {
            prediction,
            fill_rate: round_to(fill_rate, 4),
            intervals,
            confidence,
            explanation,
        })
    }

    fn features(&self, event: &EventFacts<'_>) -> Vec<f64> {
        let weekend = matches!(event.event_date.weekday(), Weekday::Fri | Weekday::Sat);
        let lead_time = event
            .lead_time_days
            .map_or(self.typical_lead_time_days, f64::from);
        let mut features = vec![
            event.ticket_price.ln_1p(),
            event.marketing_budget.ln_1p(),
            f64::from(event.capacity).ln(),
            f64::from(u8::from(weekend)),
            lead_time.ln_1p(),
        ];
        features.extend(
            self.genres
                .iter()
                .map(|g| f64::from(u8::from(g == event.genre))),
        );
        features.extend(
            self.venues
                .iter()
                .map(|v| f64::from(u8::from(v == event.venue))),
        );
        features
    }

    /// Expected fill rate and `(level, lower, upper)` fill-rate bounds per level.
    fn fill_rate_with_bounds(
        &self,
        features: &[f64],
        levels: &[f64],
    ) -> (f64, Vec<(f64, f64, f64)>) {
        let design = self.model.design_row(features);
        let eta = self.model.linear_predictor(features);
        let fill_rate = sigmoid(eta);
        let parameter_variance: f64 = design
            .iter()
            .enumerate()
            .map(|(j, xj)| {
                design
                    .iter()
                    .enumerate()
                    .map(|(k, xk)| xj * self.covariance[j][k] * xk)
                    .sum::<f64>()
            })
            .sum();
        let scatter_variance = self.dispersion / (fill_rate * (1.0 - fill_rate)).max(1e-6);
        let spread = (parameter_variance.max(0.0) + scatter_variance).sqrt();
        let bounds = levels
            .iter()
            .map(|level| {
                let z = normal_quantile(0.5 + level / 200.0);
                (*level, sigmoid(eta - z * spread), sigmoid(eta + z * spread))
            })
            .collect();
        (fill_rate, bounds)
    }

    fn evaluate<'a>(
        &self,
        held_out: impl Iterator<Item = &'a AttendanceRecord>,
    ) -> AttendanceEvaluation {
        let (mut errors, mut inside, mut count) = (0.0, 0, 0);
        for record in held_out {
            let actual = fill_rate(record);
            let (predicted, bounds) =
                self.fill_rate_with_bounds(&self.features(&record.facts()), &[80.0]);
            errors += (predicted - actual).abs();
            inside += usize::from(bounds[0].1 <= actual && actual <= bounds[0].2);
            count += 1;
        }
        let count_f = count.max(1) as f64;
        AttendanceEvaluation {
            held_out: count,
            fill_rate_mae: round_to(errors / count_f, 4),
            coverage_80: round_to(inside as f64 / count_f, 4),
        }
    }

    /// Precision of this prediction (narrow 80% interval) times accuracy earned on held-out
    /// events; without a held-out check, accuracy counts as 0.3.
    fn confidence(&self, fill_rate_width_80: f64) -> f64 {
        let precision = (1.0 - fill_rate_width_80).clamp(0.0, 1.0);
        let accuracy = self.evaluation.as_ref().map_or(0.3, |e| {
            let calibration = (1.0 - 2.0 * (0.8 - e.coverage_80).max(0.0)).clamp(0.0, 1.0);
            (1.0 - 2.0 * e.fill_rate_mae).clamp(0.0, 1.0) * calibration
        });
        (precision * accuracy).min(0.95)
    }

    /// The feature that moves this prediction most, in words.
    fn main_driver(&self, features: &[f64]) -> String {
        let contributions = self.model.contributions(features);
        let Some((index, contribution)) = contributions
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .filter(|(_, c)| c.abs() > 0.05)
        else {
            return "No single factor stands out from past events.".to_owned();
        };
        let name = if index < NUMERIC_FEATURES.len() {
            NUMERIC_FEATURES[index].to_owned()
        } else if index < NUMERIC_FEATURES.len() + self.genres.len() {
            format!("the {} genre", self.genres[index - NUMERIC_FEATURES.len()])
        } else {
            format!(
                "the venue {}",
                self.venues[index - NUMERIC_FEATURES.len() - self.genres.len()]
            )
        };
        let direction = if *contribution > 0.0 {
            "raises"
        } else {
            "lowers"
        };
        format!("The main factor: {name} {direction} the expected turnout.")
    }
}

/// Insight for the next event, in the original product's words ("Attendance Forecast",
/// "Based on ..., expect 85% attendance"). Fewer than [`MIN_EVENTS`] past events give
/// "not enough data" content.
pub fn attendance_insight(
    records: &[AttendanceRecord],
    next_event: &AttendanceQuery,
    generated_at: DateTime<Utc>,
) -> Result<InsightContent, EngineError> {
    if records.len() < MIN_EVENTS {
        return Ok(InsightContent::not_enough_data(
            MODEL_NAME,
            "attendance",
            records.len(),
            MIN_EVENTS,
            "past events",
            generated_at,
        ));
    }
    let model = train_attendance_model(records)?;
    let prediction = model.predict(next_event)?;
    let percent = prediction.fill_rate * 100.0;
    let recommendation = if prediction.fill_rate < 0.6 {
        "Consider more marketing or a lower ticket price to lift turnout.".to_owned()
    } else if prediction.fill_rate > 0.95 {
        "Expect a full house: consider a waiting list or a larger venue.".to_owned()
    } else {
        "Consider sending a reminder email 24 hours before the event".to_owned()
    };
    let mut history: Vec<series::DatedValue> = records
        .iter()
        .map(|r| series::DatedValue {
            date: r.event_date,
            value: round_to(fill_rate(r), 4),
        })
        .collect();
    history.sort_by_key(|point| point.date);
    Ok(InsightContent {
        title: "Attendance Forecast".to_owned(),
        description: format!(
            "Based on {} past events, expect {percent:.0}% attendance ({:.0} of {}) at {} on {}.",
            records.len(),
            prediction.prediction,
            next_event.venue_capacity,
            next_event.venue,
            next_event.event_date
        ),
        confidence: prediction.confidence,
        recommendation,
        model: MODEL_NAME.to_owned(),
        generated_at,
        details: InsightDetails::Attendance(AttendanceDetails {
            query: next_event.clone(),
            prediction,
            events: model.events,
            dispersion: round_to(model.dispersion, 5),
            evaluation: model.evaluation,
            history,
        }),
    })
}

/// The event a partner most often runs, on the first of its usual weekday after `after`: the
/// most frequent venue, genre and weekday, the median price, budget and capacity. What the
/// insight forecasts when no upcoming event has been announced.
pub fn typical_next_event(
    records: &[AttendanceRecord],
    after: NaiveDate,
) -> Option<AttendanceQuery> {
    let weekday = most_frequent(
        records
            .iter()
            .map(|r| r.event_date.weekday().num_days_from_monday()),
    )?;
    let event_date = (1..=7)
        .map(|days| after + chrono::Days::new(days))
        .find(|d| d.weekday().num_days_from_monday() == weekday)?;
    let median_of = |value: fn(&AttendanceRecord) -> f64| {
        series::median(&records.iter().map(value).collect::<Vec<_>>())
    };
    Some(AttendanceQuery {
        venue: most_frequent(records.iter().map(|r| r.venue.clone()))?,
        event_date,
        genre: most_frequent(records.iter().map(|r| r.genre.clone()))?,
        ticket_price: median_of(|r| r.ticket_price),
        marketing_budget: median_of(|r| r.marketing_budget),
        venue_capacity: median_of(|r| f64::from(r.capacity)).round() as u32,
        lead_time_days: None,
    })
}

/// The most frequent value, the smallest one on ties (so the choice is deterministic).
fn most_frequent<T: Ord>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: std::collections::BTreeMap<T, usize> = std::collections::BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    let highest = counts.values().copied().max()?;
    counts
        .into_iter()
        .find(|(_, count)| *count == highest)
        .map(|(value, _)| value)
}

fn fill_rate(record: &AttendanceRecord) -> f64 {
    (f64::from(record.attendee_count) / f64::from(record.capacity)).min(1.0)
}

fn validate_money(field: &'static str, value: f64) -> Result<(), EngineError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(EngineError::InvalidFeature { field, got: value })
    }
}

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut distinct: Vec<String> = values.collect();
    distinct.sort();
    distinct.dedup();
    distinct
}

fn fit_model(
    records: &[AttendanceRecord],
    evaluation: Option<AttendanceEvaluation>,
) -> Result<AttendanceModel, EngineError> {
    let known_lead_times: Vec<f64> = records
        .iter()
        .filter_map(|r| r.lead_time_days.map(f64::from))
        .collect();
    let mut model = AttendanceModel {
        events: records.len(),
        model: LogisticModel {
            means: Vec::new(),
            scales: Vec::new(),
            coefficients: Vec::new(),
        },
        covariance: Vec::new(),
        dispersion: PRIOR_DISPERSION,
        genres: distinct(records.iter().map(|r| r.genre.clone())),
        venues: distinct(records.iter().map(|r| r.venue.clone())),
        typical_lead_time_days: series::median(&known_lead_times),
        evaluation,
    };
    let rows: Vec<Vec<f64>> = records.iter().map(|r| model.features(&r.facts())).collect();
    let targets: Vec<f64> = records.iter().map(fill_rate).collect();
    let feature_count = rows[0].len();
    let mut precision = vec![PRIOR_EFFECT_SD.powi(-2); feature_count + 1];
    precision[0] = PRIOR_INTERCEPT_SD.powi(-2);
    let mut mean = vec![0.0; feature_count + 1];
    mean[0] = logit(PRIOR_FILL_RATE);
    let prior = Prior {
        mean,
        precision,
        scale_floor: FEATURE_SCALE_FLOOR,
    };

    let first = logistic::fit(&rows, &targets, &vec![1.0; rows.len()], &prior)?;
    let pearson: f64 = rows
        .iter()
        .zip(&targets)
        .map(|(row, target)| {
            let p = first.model.probability(row);
            (target - p).powi(2) / (p * (1.0 - p)).max(1e-6)
        })
        .sum();
    let dispersion = (PRIOR_DISPERSION_EVENTS * PRIOR_DISPERSION + pearson)
        / (PRIOR_DISPERSION_EVENTS + rows.len() as f64);
    let weighted = logistic::fit(&rows, &targets, &vec![1.0 / dispersion; rows.len()], &prior)?;
    model.covariance = invert(&weighted.posterior_precision).ok_or(EngineError::SingularFit)?;
    model.model = weighted.model;
    model.dispersion = dispersion;
    Ok(model)
}

fn invert(matrix: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = matrix.len();
    let columns: Option<Vec<Vec<f64>>> = (0..n)
        .map(|j| {
            let unit: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i == j))).collect();
            logistic::solve(matrix, &unit)
        })
        .collect();
    let columns = columns?;
    Some(
        (0..n)
            .map(|i| (0..n).map(|j| columns[j][i]).collect())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;
    use chrono::{Days, TimeZone};
    use rand::Rng;

    const GENRES: [(&str, f64); 3] = [("rock", 0.3), ("jazz", -0.4), ("pop", 0.0)];

    fn generated_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 6, 0, 0).unwrap()
    }

    /// The planted fill-rate curve the synthetic events are drawn around.
    fn true_fill_rate(genre: &str, price: f64, budget: f64, date: NaiveDate) -> f64 {
        let genre_effect = GENRES.iter().find(|g| g.0 == genre).unwrap().1;
        let weekend = if matches!(date.weekday(), Weekday::Fri | Weekday::Sat) {
            0.5
        } else {
            0.0
        };
        sigmoid(
            0.6 + 0.5 * (budget.ln_1p() - 7.0) - 0.6 * (price.ln_1p() - 3.5)
                + weekend
                + genre_effect,
        )
    }

    fn events(seed: u64, count: usize) -> Vec<AttendanceRecord> {
        let mut rng = synthetic::rng(seed);
        let first = NaiveDate::from_ymd_opt(2025, 1, 3).unwrap();
        (0..count)
            .map(|i| {
                let genre = GENRES[rng.random_range(0..GENRES.len())].0;
                let price = rng.random_range(10.0..90.0);
                let budget = rng.random_range(300.0..5_000.0);
                let event_date = first + Days::new(rng.random_range(0..600));
                let capacity = rng.random_range(200..1_000);
                let noisy_logit = logit(true_fill_rate(genre, price, budget, event_date))
                    + 0.15 * synthetic::normal(&mut rng);
                AttendanceRecord {
                    venue: format!("Hall {}", i % 2),
                    event_date,
                    genre: genre.to_owned(),
                    ticket_price: price,
                    marketing_budget: budget,
                    capacity,
                    attendee_count: (sigmoid(noisy_logit) * f64::from(capacity)).round() as u32,
                    lead_time_days: Some(rng.random_range(10..60)),
                }
            })
            .collect()
    }

    fn query(genre: &str, price: f64, budget: f64, event_date: NaiveDate) -> AttendanceQuery {
        AttendanceQuery {
            venue: "Hall 1".to_owned(),
            event_date,
            genre: genre.to_owned(),
            ticket_price: price,
            marketing_budget: budget,
            venue_capacity: 500,
            lead_time_days: None,
        }
    }

    fn width_95(prediction: &AttendancePrediction) -> f64 {
        (prediction.intervals[1].upper - prediction.intervals[1].lower) / 500.0
    }

    #[test]
    fn many_events_recover_the_planted_fill_rate_with_a_narrow_interval() {
        let model = train_attendance_model(&events(5, 300)).unwrap();
        let saturday = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let tuesday = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
        for (genre, price, budget, date) in [
            ("rock", 25.0, 2_000.0, saturday),
            ("jazz", 60.0, 800.0, tuesday),
            ("pop", 40.0, 4_000.0, tuesday),
        ] {
            let truth = true_fill_rate(genre, price, budget, date);
            let prediction = model.predict(&query(genre, price, budget, date)).unwrap();
            assert!(
                (prediction.fill_rate - truth).abs() < 0.04,
                "{genre}: {prediction:?} vs {truth}"
            );
            assert!((prediction.prediction - truth * 500.0).abs() < 20.0);
            assert!(width_95(&prediction) < 0.25, "{prediction:?}");
            assert!(prediction.confidence.value() > 0.5, "{prediction:?}");
        }
        let evaluation = model.evaluation.as_ref().unwrap();
        assert!(evaluation.fill_rate_mae < 0.05, "{evaluation:?}");
        assert!(evaluation.coverage_80 > 0.65, "{evaluation:?}");
    }

    #[test]
    fn two_events_give_a_wide_interval_and_low_confidence() {
        let few = train_attendance_model(&events(6, 2)).unwrap();
        let many = train_attendance_model(&events(6, 300)).unwrap();
        let planned = query(
            "rock",
            30.0,
            1_500.0,
            NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        );
        let from_few = few.predict(&planned).unwrap();
        let from_many = many.predict(&planned).unwrap();
        assert!(width_95(&from_few) > 0.4, "{from_few:?}");
        assert!(width_95(&from_few) > 2.0 * width_95(&from_many));
        assert!(from_few.confidence.value() < 0.2, "{from_few:?}");
        assert!(
            from_few.explanation.contains("based on 2 past events"),
            "{}",
            from_few.explanation
        );
    }

    #[test]
    fn insight_speaks_like_the_original_product() {
        let planned = query(
            "rock",
            25.0,
            2_000.0,
            NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        );
        let content = attendance_insight(&events(7, 120), &planned, generated_at()).unwrap();
        assert_eq!(content.title, "Attendance Forecast");
        assert!(
            content
                .description
                .starts_with("Based on 120 past events, expect ")
        );
        assert!(content.description.contains("% attendance"));
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["details"]["kind"], "attendance");
        assert_eq!(
            serde_json::from_value::<InsightContent>(json).unwrap(),
            content
        );

        let thin = attendance_insight(&events(7, 3), &planned, generated_at()).unwrap();
        assert!(thin.confidence.value() <= 0.2);
        assert!(matches!(thin.details, InsightDetails::NotEnoughData(_)));
    }

    #[test]
    fn the_typical_next_event_is_the_usual_one_on_its_usual_weekday() {
        let mut records = events(9, 7);
        for (i, record) in records.iter_mut().enumerate() {
            // Saturdays in November 2026, one Tuesday.
            let day = if i == 6 { 3 } else { 7 * (i as u32 % 4) + 7 };
            record.event_date = NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
            record.genre = if i < 4 { "rock" } else { "jazz" }.to_owned();
            record.capacity = 100 * (i as u32 + 1);
        }
        let wednesday = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let next = typical_next_event(&records, wednesday).unwrap();
        assert_eq!(
            next.event_date,
            NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
        );
        assert_eq!(next.genre, "rock");
        assert_eq!(next.venue_capacity, 400);
        assert_eq!(typical_next_event(&[], wednesday), None);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let mut records = events(8, 10);
        records[3].capacity = 0;
        assert!(matches!(
            train_attendance_model(&records),
            Err(EngineError::InvalidFeature {
                field: "capacity",
                ..
            })
        ));
        records[3].capacity = 100;
        records[4].ticket_price = f64::NAN;
        assert!(matches!(
            train_attendance_model(&records),
            Err(EngineError::InvalidFeature {
                field: "ticket price",
                ..
            })
        ));
        assert_eq!(
            train_attendance_model(&[]),
            Err(EngineError::TooShort { needed: 1, got: 0 })
        );
        let model = train_attendance_model(&events(8, 10)).unwrap();
        let mut planned = query(
            "rock",
            25.0,
            -5.0,
            NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
        );
        assert!(model.predict(&planned).is_err());
        planned.marketing_budget = 100.0;
        planned.genre = "opera".to_owned();
        assert!(model.predict(&planned).is_ok());
    }
}
