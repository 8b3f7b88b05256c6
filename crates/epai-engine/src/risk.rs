//! Churn risk per entity (a user id found in event data).
//!
//! Features at a reference date: days since the last event, events in the last 28 days, and the
//! trend of the last 14 days against the 14 before. Labels come from history: an entity churned
//! if it had no events in the holdout window after the reference date. A ridge-penalised
//! logistic regression learns from those labels; a quarter of the entities is held out to
//! measure AUC and calibration, which earn the insight's confidence. The logistic output is the
//! probability; the held-out reliability bins show whether it can be read as one.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::content::{Confidence, InsightContent, InsightDetails};
use crate::error::EngineError;
use crate::logistic::{self, Evaluation, LogisticModel, holdout_split};
use crate::series::round_to;

pub const MODEL_NAME: &str = "entity_risk";
const FREQUENCY_WINDOW_DAYS: u64 = 28;
const TREND_WINDOW_DAYS: u64 = 14;
/// Entities with a known outcome needed before the model is trained.
pub const MIN_TRAINING_ENTITIES: usize = 20;
/// Each outcome must appear this often among them.
pub const MIN_PER_OUTCOME: usize = 5;
/// History needed before the training reference date so the features mean something.
pub const MIN_HISTORY_DAYS: u64 = FREQUENCY_WINDOW_DAYS;
const L2: f64 = 1.0;
const CALIBRATION_BINS: usize = 5;
const FEATURE_NAMES: [&str; 3] = ["recency", "frequency", "trend"];

/// Events of one entity, one entry per day with activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityActivity {
    pub entity_id: String,
    pub days: Vec<DailyActivity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DailyActivity {
    pub date: NaiveDate,
    pub events: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EntityFeatures {
    pub recency_days: f64,
    /// Events in the 28 days up to and including the reference date.
    pub frequency: f64,
    pub last_14_days: f64,
    pub previous_14_days: f64,
}

impl EntityFeatures {
    /// -1 (stopped) ..= 1 (new), 0 when flat or idle.
    pub fn trend(&self) -> f64 {
        let total = self.last_14_days + self.previous_14_days;
        if total > 0.0 {
            (self.last_14_days - self.previous_14_days) / total
        } else {
            0.0
        }
    }

    /// Had events in the last 28 days: the population the model learns about and scores.
    pub fn is_active(&self) -> bool {
        self.frequency > 0.0
    }

    fn model_inputs(&self) -> Vec<f64> {
        vec![
            self.recency_days.ln_1p(),
            self.frequency.ln_1p(),
            self.trend(),
        ]
    }

    /// Plain-language reasons, strongest signals first.
    pub fn reasons(&self) -> String {
        let mut reasons = Vec::new();
        if self.recency_days >= 7.0 {
            reasons.push(format!("no activity for {:.0} days", self.recency_days));
        }
        if self.previous_14_days > 0.0 && self.last_14_days < self.previous_14_days {
            let fall = 1.0 - self.last_14_days / self.previous_14_days;
            reasons.push(format!(
                "down {:.0}% from the previous two weeks",
                fall * 100.0
            ));
        }
        if self.frequency < 4.0 {
            reasons.push(format!(
                "only {:.0} events in the last 28 days",
                self.frequency
            ));
        }
        if reasons.is_empty() {
            reasons.push(format!(
                "{:.0} events in the last 28 days, last one {:.0} days ago",
                self.frequency, self.recency_days
            ));
        }
        reasons.join(", ")
    }
}

/// Features at `as_of`, from events on or before it; `None` if the entity had none by then.
/// Entities with no events in the last 28 days are already gone rather than at risk; callers
/// pick the active ones with [`EntityFeatures::is_active`].
pub fn entity_features(activity: &EntityActivity, as_of: NaiveDate) -> Option<EntityFeatures> {
    let past = activity
        .days
        .iter()
        .filter(|d| d.date <= as_of && d.events > 0);
    let last_active = past.clone().map(|d| d.date).max()?;
    let events_since = |days: u64| -> f64 {
        let start = as_of - Days::new(days);
        past.clone()
            .filter(|d| d.date > start)
            .map(|d| f64::from(d.events))
            .sum()
    };
    let last_14_days = events_since(TREND_WINDOW_DAYS);
    let frequency = events_since(FREQUENCY_WINDOW_DAYS);
    Some(EntityFeatures {
        recency_days: (as_of - last_active).num_days() as f64,
        frequency,
        last_14_days,
        previous_14_days: frequency - last_14_days,
    })
}

/// Whether the entity had no events in the `holdout_days` after `as_of`.
pub fn churned(activity: &EntityActivity, as_of: NaiveDate, holdout_days: u32) -> bool {
    let end = as_of + Days::new(u64::from(holdout_days));
    !activity
        .days
        .iter()
        .any(|d| d.date > as_of && d.date <= end && d.events > 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChurnExample {
    pub features: EntityFeatures,
    pub churned: bool,
}

/// A trained churn model and how it did on the held-out quarter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnModel {
    pub model: LogisticModel,
    pub evaluation: Evaluation,
}

impl ChurnModel {
    pub fn probability(&self, features: &EntityFeatures) -> f64 {
        self.model.probability(&features.model_inputs())
    }
}

/// Trains on three quarters of the labelled examples and evaluates on the rest.
pub fn train_churn_model(examples: &[ChurnExample]) -> Result<ChurnModel, EngineError> {
    let (train, held_out) = holdout_split(examples.len());
    let rows: Vec<Vec<f64>> = train
        .iter()
        .map(|i| examples[*i].features.model_inputs())
        .collect();
    let labels: Vec<bool> = train.iter().map(|i| examples[*i].churned).collect();
    let model = logistic::fit_classifier(&rows, &labels, L2)?;
    let probabilities: Vec<f64> = held_out
        .iter()
        .map(|i| model.probability(&examples[*i].features.model_inputs()))
        .collect();
    let held_out_labels: Vec<bool> = held_out.iter().map(|i| examples[*i].churned).collect();
    let evaluation = Evaluation::of(
        train.len(),
        &probabilities,
        &held_out_labels,
        CALIBRATION_BINS,
    );
    Ok(ChurnModel { model, evaluation })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityRisk {
    pub entity_id: String,
    pub probability: f64,
    pub features: EntityFeatures,
    pub reasons: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedCoefficient {
    pub feature: String,
    /// Per standard deviation of the (log-transformed) feature.
    pub coefficient: f64,
}

/// `details` of a churn risk insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnDetails {
    pub as_of: NaiveDate,
    pub holdout_days: u32,
    pub evaluation: Evaluation,
    pub coefficients: Vec<NamedCoefficient>,
    pub scored_entities: usize,
    /// Entities with a churn probability of at least one half.
    pub at_risk: usize,
    pub top: Vec<EntityRisk>,
}

/// Learns churn from the entities' own history (features at `as_of - holdout_days`, labelled by
/// the holdout window that followed), then scores every entity at `as_of` and lists the
/// `top_n` most at risk with reasons. Too little history gives "not enough data" content.
pub fn churn_insight(
    activities: &[EntityActivity],
    as_of: NaiveDate,
    holdout_days: u32,
    top_n: usize,
    generated_at: DateTime<Utc>,
) -> Result<InsightContent, EngineError> {
    let training_date = as_of - Days::new(u64::from(holdout_days));
    let first_day = activities
        .iter()
        .flat_map(|a| &a.days)
        .map(|d| d.date)
        .min();
    let history_days = first_day.map_or(0, |first| (training_date - first).num_days().max(0));
    let examples: Vec<ChurnExample> = activities
        .iter()
        .filter_map(|activity| {
            entity_features(activity, training_date)
                .filter(EntityFeatures::is_active)
                .map(|features| ChurnExample {
                    features,
                    churned: churned(activity, training_date, holdout_days),
                })
        })
        .collect();
    let churners = examples.iter().filter(|e| e.churned).count();
    let not_enough = |available: usize, required: usize, unit: &str| {
        InsightContent::not_enough_data(
            MODEL_NAME,
            "churn risk",
            available,
            required,
            unit,
            generated_at,
        )
    };
    if (history_days as u64) < MIN_HISTORY_DAYS {
        return Ok(not_enough(
            history_days as usize,
            MIN_HISTORY_DAYS as usize,
            "days",
        ));
    }
    if examples.len() < MIN_TRAINING_ENTITIES
        || churners.min(examples.len() - churners) < MIN_PER_OUTCOME
    {
        return Ok(not_enough(
            churners.min(examples.len() - churners),
            MIN_PER_OUTCOME,
            "entities with each outcome",
        ));
    }
    let churn_model = train_churn_model(&examples)?;
    let mut scored: Vec<EntityRisk> = activities
        .iter()
        .filter_map(|activity| {
            entity_features(activity, as_of)
                .filter(EntityFeatures::is_active)
                .map(|features| EntityRisk {
                    entity_id: activity.entity_id.clone(),
                    probability: round_to(churn_model.probability(&features), 4),
                    reasons: features.reasons(),
                    features,
                })
        })
        .collect();
    scored.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then(a.entity_id.cmp(&b.entity_id))
    });
    let at_risk = scored.iter().filter(|s| s.probability >= 0.5).count();
    let scored_entities = scored.len();
    scored.truncate(top_n);
    let auc_text = churn_model
        .evaluation
        .auc
        .map_or_else(String::new, |auc| format!(" (held-out AUC {auc:.2})"));
    let description = format!(
        "{at_risk} of {scored_entities} active users are likely to stop within {holdout_days} \
         days{auc_text}.{}",
        scored.first().map_or_else(String::new, |top| format!(
            " Most at risk: {} ({:.0}%): {}.",
            top.entity_id,
            top.probability * 100.0,
            top.reasons
        ))
    );
    let recommendation = if at_risk > 0 {
        format!(
            "Reach out to the {} users most at risk before they go quiet.",
            at_risk.min(top_n)
        )
    } else {
        "No users are at high risk right now; no action needed.".to_owned()
    };
    let coefficients = FEATURE_NAMES
        .iter()
        .zip(&churn_model.model.coefficients[1..])
        .map(|(name, coefficient)| NamedCoefficient {
            feature: (*name).to_owned(),
            coefficient: round_to(*coefficient, 4),
        })
        .collect();
    Ok(InsightContent {
        title: "Churn risk".to_owned(),
        description,
        confidence: Confidence::clamped(churn_model.evaluation.confidence()),
        recommendation,
        model: MODEL_NAME.to_owned(),
        generated_at,
        details: InsightDetails::ChurnRisk(ChurnDetails {
            as_of,
            holdout_days,
            evaluation: churn_model.evaluation,
            coefficients,
            scored_entities,
            at_risk,
            top: scored,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{auc, date_at};
    use crate::synthetic;
    use chrono::TimeZone;
    use rand::Rng;

    const DAYS: usize = 120;
    const HOLDOUT: u32 = 14;

    fn day_one() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    fn generated_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 29, 6, 0, 0).unwrap()
    }

    /// Users with their own activity rate; planted churners fade out over two weeks and stop on
    /// a day spread around the reference dates. Returns the activity and each stop day.
    fn population(seed: u64, users: usize) -> Vec<(EntityActivity, Option<usize>)> {
        let mut rng = synthetic::rng(seed);
        (0..users)
            .map(|user| {
                let rate = (0.6 * synthetic::normal(&mut rng)).exp();
                let stop = (rng.random::<f64>() < 0.4).then(|| rng.random_range(80..DAYS));
                let days = (0..DAYS)
                    .filter_map(|t| {
                        let fade = match stop {
                            Some(s) if t >= s => 0.0,
                            Some(s) if t + 14 >= s => (s - t) as f64 / 14.0,
                            _ => 1.0,
                        };
                        let events = synthetic::poisson(&mut rng, rate * fade) as u32;
                        (events > 0).then(|| DailyActivity {
                            date: date_at(day_one(), t),
                            events,
                        })
                    })
                    .collect();
                (
                    EntityActivity {
                        entity_id: format!("user-{user}"),
                        days,
                    },
                    stop,
                )
            })
            .collect()
    }

    #[test]
    fn planted_churners_rank_above_active_users() {
        let people = population(7, 400);
        let activities: Vec<EntityActivity> = people.iter().map(|p| p.0.clone()).collect();
        let as_of = date_at(day_one(), DAYS - 1);
        let content = churn_insight(&activities, as_of, HOLDOUT, 10, generated_at()).unwrap();
        let InsightDetails::ChurnRisk(details) = &content.details else {
            panic!("expected churn details: {content:?}");
        };
        let held_out_auc = details.evaluation.auc.unwrap();
        assert!(held_out_auc > 0.8, "held-out AUC {held_out_auc}");
        assert!(
            details.evaluation.calibration_error < 0.1,
            "{:?}",
            details.evaluation
        );
        assert!(content.confidence.value() > 0.5);

        // Score everyone at `as_of` and compare with who was planted to have stopped by then.
        let churn_model = {
            let training_date = as_of - Days::new(u64::from(HOLDOUT));
            let examples: Vec<ChurnExample> = activities
                .iter()
                .filter_map(|a| {
                    entity_features(a, training_date)
                        .filter(EntityFeatures::is_active)
                        .map(|features| ChurnExample {
                            features,
                            churned: churned(a, training_date, HOLDOUT),
                        })
                })
                .collect();
            train_churn_model(&examples).unwrap()
        };
        let (scores, planted): (Vec<f64>, Vec<bool>) = people
            .iter()
            .filter_map(|(activity, stop)| {
                entity_features(activity, as_of)
                    .filter(EntityFeatures::is_active)
                    .map(|f| {
                        (
                            churn_model.probability(&f),
                            stop.is_some_and(|s| s + 7 <= DAYS),
                        )
                    })
            })
            .unzip();
        let planted_auc = auc(&scores, &planted).unwrap();
        assert!(planted_auc > 0.8, "planted churners AUC {planted_auc}");

        let active_now = people
            .iter()
            .filter(|(a, _)| entity_features(a, as_of).is_some_and(|f| f.is_active()))
            .count();
        assert_eq!(details.scored_entities, active_now);
        assert!(details.top.iter().all(|t| t.features.recency_days < 28.0));
        let top = &details.top[0];
        assert!(top.probability >= details.top[9].probability);
        assert!(top.reasons.contains("no activity for"), "{}", top.reasons);
    }

    #[test]
    fn reasons_describe_recency_and_decline() {
        let features = EntityFeatures {
            recency_days: 12.0,
            frequency: 10.0,
            last_14_days: 2.0,
            previous_14_days: 8.0,
        };
        assert_eq!(
            features.reasons(),
            "no activity for 12 days, down 75% from the previous two weeks"
        );
        assert!((features.trend() + 0.6).abs() < 1e-12);
    }

    #[test]
    fn features_ignore_events_after_the_reference_date() {
        let activity = EntityActivity {
            entity_id: "u".to_owned(),
            days: vec![
                DailyActivity {
                    date: date_at(day_one(), 0),
                    events: 3,
                },
                DailyActivity {
                    date: date_at(day_one(), 20),
                    events: 2,
                },
                DailyActivity {
                    date: date_at(day_one(), 40),
                    events: 5,
                },
            ],
        };
        let features = entity_features(&activity, date_at(day_one(), 30)).unwrap();
        assert_eq!(features.recency_days, 10.0);
        assert_eq!(features.frequency, 2.0);
        assert_eq!(features.last_14_days, 2.0);
        assert_eq!(features.previous_14_days, 0.0);
        assert!(!churned(&activity, date_at(day_one(), 30), 14));
        assert!(churned(&activity, date_at(day_one(), 41), 14));
        assert_eq!(entity_features(&activity, day_one() - Days::new(1)), None);
    }

    #[test]
    fn under_a_week_of_history_says_not_enough_data() {
        let people = population(3, 50);
        let activities: Vec<EntityActivity> = people
            .into_iter()
            .map(|(mut a, _)| {
                a.days.retain(|d| d.date >= date_at(day_one(), DAYS - 6));
                a
            })
            .collect();
        let content = churn_insight(
            &activities,
            date_at(day_one(), DAYS - 1),
            HOLDOUT,
            5,
            generated_at(),
        )
        .unwrap();
        assert!(content.confidence.value() <= 0.2);
        assert!(matches!(content.details, InsightDetails::NotEnoughData(_)));
        let empty = churn_insight(&[], day_one(), HOLDOUT, 5, generated_at()).unwrap();
        assert!(matches!(empty.details, InsightDetails::NotEnoughData(_)));
    }
}
