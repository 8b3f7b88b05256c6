//! Lead scoring, the original product's classification model, learned per partner from its own
//! leads labelled by whether a later `sales_transaction` came from them.
//!
//! A ridge-penalised logistic regression on engagement score, previous purchases, website
//! visits, email opens, social media engagement and age (counts enter as `log1p`, since the
//! tenth visit says less than the first). A quarter of the leads is held out: its AUC and its
//! reliability bins (predicted against observed conversion) earn the confidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::content::{Confidence, InsightContent, InsightDetails};
use crate::error::EngineError;
use crate::logistic::{self, Evaluation, LogisticModel, holdout_split};
use crate::series::{self, round_to};

pub const MODEL_NAME: &str = "lead_scoring";
pub const MIN_LEADS: usize = 20;
/// Each outcome must appear this often among the leads.
pub const MIN_PER_OUTCOME: usize = 5;
const L2: f64 = 1.0;
const CALIBRATION_BINS: usize = 5;
const FEATURE_NAMES: [&str; 6] = [
    "engagement score",
    "previous purchases",
    "website visits",
    "email opens",
    "social media engagement",
    "age",
];

/// The original `/predict` lead inputs the model uses (name, email and location identify the
/// lead but do not score it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeadFeatures {
    pub engagement_score: f64,
    pub previous_purchases: f64,
    pub website_visits: f64,
    pub email_opens: f64,
    pub social_media_engagement: f64,
    pub age: Option<f64>,
}

impl LeadFeatures {
    fn validate(&self) -> Result<(), EngineError> {
        let fields = [
            ("engagement score", Some(self.engagement_score)),
            ("previous purchases", Some(self.previous_purchases)),
            ("website visits", Some(self.website_visits)),
            ("email opens", Some(self.email_opens)),
            (
                "social media engagement",
                Some(self.social_media_engagement),
            ),
            ("age", self.age),
        ];
        for (field, value) in fields {
            if let Some(value) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                return Err(EngineError::InvalidFeature { field, got: value });
            }
        }
        Ok(())
    }

    fn model_inputs(&self, typical_age: f64) -> Vec<f64> {
        vec![
            self.engagement_score,
            self.previous_purchases.ln_1p(),
            self.website_visits.ln_1p(),
            self.email_opens.ln_1p(),
            self.social_media_engagement.ln_1p(),
            self.age.unwrap_or(typical_age),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeadExample {
    pub features: LeadFeatures,
    /// A later sales transaction came from this lead.
    pub converted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadScoringModel {
    pub model: LogisticModel,
    pub evaluation: Evaluation,
    pub base_rate: f64,
    /// Stand-in for unknown ages: the median of the known ones.
    pub typical_age: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    pub feature: String,
    /// Pull on the log-odds relative to an average lead.
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadScore {
    /// Probability that the lead converts.
    pub prediction: f64,
    pub confidence: Confidence,
    pub explanation: String,
    pub contributions: Vec<FeatureContribution>,
}

/// `details` of a lead scoring insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadDetails {
    pub leads: usize,
    pub base_rate: f64,
    pub evaluation: Evaluation,
    /// Per standard deviation of each (transformed) feature.
    pub coefficients: Vec<FeatureContribution>,
}

/// Trains on three quarters of the leads and evaluates on the rest.
pub fn train_lead_model(examples: &[LeadExample]) -> Result<LeadScoringModel, EngineError> {
    if examples.len() < MIN_LEADS {
        return Err(EngineError::TooShort {
            needed: MIN_LEADS,
            got: examples.len(),
        });
    }
    for example in examples {
        example.features.validate()?;
    }
    let known_ages: Vec<f64> = examples.iter().filter_map(|e| e.features.age).collect();
    let typical_age = series::median(&known_ages);
    let inputs = |index: &usize| examples[*index].features.model_inputs(typical_age);
    let (train, held_out) = holdout_split(examples.len());
    let rows: Vec<Vec<f64>> = train.iter().map(inputs).collect();
    let labels: Vec<bool> = train.iter().map(|i| examples[*i].converted).collect();
    let model = logistic::fit_classifier(&rows, &labels, L2)?;
    let probabilities: Vec<f64> = held_out
        .iter()
        .map(|i| model.probability(&inputs(i)))
        .collect();
    let held_out_labels: Vec<bool> = held_out.iter().map(|i| examples[*i].converted).collect();
    let conversions = examples.iter().filter(|e| e.converted).count();
    Ok(LeadScoringModel {
        model,
        evaluation: Evaluation::of(
            train.len(),
            &probabilities,
            &held_out_labels,
            CALIBRATION_BINS,
        ),
        base_rate: round_to(conversions as f64 / examples.len() as f64, 4),
        typical_age,
    })
}

impl LeadScoringModel {
    pub fn score(&self, lead: &LeadFeatures) -> Result<LeadScore, EngineError> {
        lead.validate()?;
        let inputs = lead.model_inputs(self.typical_age);
        let probability = self.model.probability(&inputs);
        let mut contributions: Vec<FeatureContribution> = FEATURE_NAMES
            .iter()
            .zip(self.model.contributions(&inputs))
            .map(|(feature, contribution)| FeatureContribution {
                feature: (*feature).to_owned(),
                contribution: round_to(contribution, 4),
            })
            .collect();
        contributions.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        let drivers: Vec<String> = contributions
            .iter()
            .take(3)
            .filter(|c| c.contribution.abs() > 0.05)
            .map(|c| {
                let direction = if c.contribution > 0.0 {
                    "raises"
                } else {
                    "lowers"
                };
                format!("{} {direction} it", c.feature)
            })
            .collect();
        let drivers = if drivers.is_empty() {
            "this lead looks like an average lead".to_owned()
        } else {
            drivers.join(", ")
        };
        let explanation = format!(
            "{:.0}% likely to convert against {:.0}% for the average lead: {drivers}.",
            probability * 100.0,
            self.base_rate * 100.0
        );
        Ok(LeadScore {
            prediction: round_to(probability, 4),
            confidence: Confidence::clamped(self.evaluation.confidence()),
            explanation,
            contributions,
        })
    }
}

/// What the partner's leads say about conversion, with the held-out figures behind it. Too few
/// leads, or too few of either outcome, give "not enough data" content.
pub fn lead_scoring_insight(
    examples: &[LeadExample],
    generated_at: DateTime<Utc>,
) -> Result<InsightContent, EngineError> {
    let conversions = examples.iter().filter(|e| e.converted).count();
    let rarest = conversions.min(examples.len() - conversions);
    if examples.len() < MIN_LEADS {
        return Ok(InsightContent::not_enough_data(
            MODEL_NAME,
            "lead scoring",
            examples.len(),
            MIN_LEADS,
            "leads",
            generated_at,
        ));
    }
    if rarest < MIN_PER_OUTCOME {
        return Ok(InsightContent::not_enough_data(
            MODEL_NAME,
            "lead scoring",
            rarest,
            MIN_PER_OUTCOME,
            "leads with each outcome",
            generated_at,
        ));
    }
    let lead_model = train_lead_model(examples)?;
    let mut coefficients: Vec<FeatureContribution> = FEATURE_NAMES
        .iter()
        .zip(&lead_model.model.coefficients[1..])
        .map(|(feature, coefficient)| FeatureContribution {
            feature: (*feature).to_owned(),
            contribution: round_to(*coefficient, 4),
        })
        .collect();
    coefficients.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    let strongest = &coefficients[0];
    let auc_text = lead_model
        .evaluation
        .auc
        .map_or_else(String::new, |auc| format!(" Held-out AUC {auc:.2}."));
    Ok(InsightContent {
        title: "Lead Scoring".to_owned(),
        description: format!(
            "{:.0}% of {} leads converted; {} is the strongest signal of a sale.{auc_text}",
            lead_model.base_rate * 100.0,
            examples.len(),
            strongest.feature
        ),
        confidence: Confidence::clamped(lead_model.evaluation.confidence()),
        recommendation: format!(
            "Prioritise follow-up on leads with high {}; score new leads as they arrive.",
            strongest.feature
        ),
        model: MODEL_NAME.to_owned(),
        generated_at,
        details: InsightDetails::LeadScoring(LeadDetails {
            leads: examples.len(),
            base_rate: lead_model.base_rate,
            evaluation: lead_model.evaluation,
            coefficients,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::sigmoid;
    use crate::synthetic;
    use chrono::TimeZone;
    use rand::Rng;

    fn generated_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 6, 0, 0).unwrap()
    }

    /// Leads whose conversion follows a planted curve: engagement and past purchases matter
    /// most, social media engagement not at all.
    fn leads(seed: u64, count: usize) -> Vec<LeadExample> {
        let mut rng = synthetic::rng(seed);
        (0..count)
            .map(|_| {
                let features = LeadFeatures {
                    engagement_score: rng.random_range(0.0..100.0),
                    previous_purchases: synthetic::poisson(&mut rng, 1.0),
                    website_visits: synthetic::poisson(&mut rng, 6.0),
                    email_opens: synthetic::poisson(&mut rng, 4.0),
                    social_media_engagement: synthetic::poisson(&mut rng, 3.0),
                    age: (rng.random::<f64>() < 0.9).then(|| rng.random_range(18.0..70.0)),
                };
                let planted = -1.5
                    + 0.04 * (features.engagement_score - 50.0)
                    + 0.9 * features.previous_purchases.ln_1p()
                    + 0.4 * (features.website_visits.ln_1p() - 2.0)
                    + 0.3 * (features.email_opens.ln_1p() - 1.6);
                LeadExample {
                    features,
                    converted: rng.random::<f64>() < sigmoid(planted),
                }
            })
            .collect()
    }

    #[test]
    fn planted_leads_are_ranked_and_calibrated() {
        let lead_model = train_lead_model(&leads(12, 800)).unwrap();
        let evaluation = &lead_model.evaluation;
        assert!(evaluation.auc.unwrap() > 0.75, "{evaluation:?}");
        assert!(evaluation.calibration_error < 0.06, "{evaluation:?}");
        for bin in evaluation.calibration.iter().filter(|b| b.count >= 30) {
            assert!(
                (bin.mean_predicted - bin.observed_rate).abs() < 0.12,
                "{bin:?}"
            );
        }
    }

    #[test]
    fn a_score_explains_its_top_contributing_features() {
        let lead_model = train_lead_model(&leads(13, 800)).unwrap();
        let keen = LeadFeatures {
            engagement_score: 95.0,
            previous_purchases: 4.0,
            website_visits: 12.0,
            email_opens: 6.0,
            social_media_engagement: 3.0,
            age: Some(35.0),
        };
        let score = lead_model.score(&keen).unwrap();
        assert!(score.prediction > 0.8, "{score:?}");
        assert_eq!(score.contributions[0].feature, "engagement score");
        assert!(
            score.explanation.contains("engagement score raises it"),
            "{}",
            score.explanation
        );
        let cold = LeadFeatures {
            engagement_score: 5.0,
            previous_purchases: 0.0,
            age: None,
            ..keen
        };
        let cold_score = lead_model.score(&cold).unwrap();
        assert!(cold_score.prediction < 0.1, "{cold_score:?}");
        assert_eq!(
            score.confidence,
            Confidence::clamped(lead_model.evaluation.confidence())
        );
        assert!(
            score.confidence.value() > 0.3,
            "{:?}",
            lead_model.evaluation
        );
    }

    #[test]
    fn insight_names_the_strongest_signal() {
        let content = lead_scoring_insight(&leads(14, 400), generated_at()).unwrap();
        assert_eq!(content.title, "Lead Scoring");
        assert!(
            content
                .description
                .contains("engagement score is the strongest signal")
        );
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["details"]["kind"], "lead_scoring");
        assert_eq!(
            serde_json::from_value::<InsightContent>(json).unwrap(),
            content
        );
    }

    #[test]
    fn few_leads_say_not_enough_data_and_bad_values_are_errors() {
        let content = lead_scoring_insight(&leads(15, 6), generated_at()).unwrap();
        assert!(content.confidence.value() <= 0.2);
        assert!(matches!(content.details, InsightDetails::NotEnoughData(_)));
        let mut examples = leads(15, 40);
        examples[2].features.website_visits = f64::NAN;
        assert!(matches!(
            train_lead_model(&examples),
            Err(EngineError::InvalidFeature {
                field: "website visits",
                ..
            })
        ));
        examples[2].features.website_visits = 3.0;
        examples[5].features.age = Some(-4.0);
        assert!(matches!(
            train_lead_model(&examples),
            Err(EngineError::InvalidFeature { field: "age", .. })
        ));
        let all_converted: Vec<LeadExample> = leads(16, 30)
            .into_iter()
            .map(|e| LeadExample {
                converted: true,
                ..e
            })
            .collect();
        assert!(matches!(
            train_lead_model(&all_converted),
            Err(EngineError::SingleClass { .. })
        ));
    }
}
