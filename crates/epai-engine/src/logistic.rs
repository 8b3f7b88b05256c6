//! L2-regularised logistic regression fitted by Newton's method (IRLS), shared by the churn,
//! lead and attendance models, plus the held-out evaluation that earns their confidence.
//!
//! Features are standardised before fitting so one penalty suits them all; the intercept is not
//! penalised unless a prior says so. Fitting is deterministic: same data, same coefficients.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::series::{auc, round_to};

const MAX_ITERATIONS: usize = 50;
const CONVERGED_STEP: f64 = 1e-8;
/// Probabilities are kept this far from 0 and 1 so weights and logs stay finite.
const PROBABILITY_FLOOR: f64 = 1e-9;
/// Every fourth example is held out for evaluation.
const HOLDOUT_EVERY: usize = 4;

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn logit(p: f64) -> f64 {
    let p = p.clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
    (p / (1.0 - p)).ln()
}

/// Gaussian prior on the coefficients of the standardised features, intercept first.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    pub mean: Vec<f64>,
    pub precision: Vec<f64>,
    /// Smallest standardisation scale: with a handful of examples the observed spread of a
    /// feature says little, and a tiny scale would turn a modest new value into an extreme one.
    pub scale_floor: f64,
}

impl Prior {
    /// Ridge penalty `l2` on every slope, a flat prior on the intercept.
    pub fn ridge(feature_count: usize, l2: f64) -> Self {
        let mut precision = vec![l2; feature_count + 1];
        precision[0] = 0.0;
        Prior {
            mean: vec![0.0; feature_count + 1],
            precision,
            scale_floor: 0.0,
        }
    }
}

/// A fitted model: standardisation plus coefficients (intercept first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    pub coefficients: Vec<f64>,
}

/// A fit with its posterior precision (the penalised Hessian at the optimum), for intervals.
#[derive(Debug, Clone)]
pub struct LogisticFit {
    pub model: LogisticModel,
    pub posterior_precision: Vec<Vec<f64>>,
}

impl LogisticModel {
    /// Intercept followed by the standardised features.
    pub fn design_row(&self, features: &[f64]) -> Vec<f64> {
        std::iter::once(1.0)
            .chain(
                features
                    .iter()
                    .zip(self.means.iter().zip(&self.scales))
                    .map(|(value, (mean, scale))| {
                        if *scale > 0.0 {
                            (value - mean) / scale
                        } else {
                            0.0
                        }
                    }),
            )
            .collect()
    }

    pub fn linear_predictor(&self, features: &[f64]) -> f64 {
        dot(&self.design_row(features), &self.coefficients)
    }

    pub fn probability(&self, features: &[f64]) -> f64 {
        sigmoid(self.linear_predictor(features))
    }

    /// Each feature's pull on the log-odds relative to an average example.
    pub fn contributions(&self, features: &[f64]) -> Vec<f64> {
        self.design_row(features)[1..]
            .iter()
            .zip(&self.coefficients[1..])
            .map(|(x, b)| x * b)
            .collect()
    }
}

/// Fits `P(target) = sigmoid(x·β)` to targets in 0..=1 (fractions allowed) with per-example
/// weights and a Gaussian prior on the standardised coefficients.
pub fn fit(
    rows: &[Vec<f64>],
    targets: &[f64],
    weights: &[f64],
    prior: &Prior,
) -> Result<LogisticFit, EngineError> {
    let feature_count = prior.mean.len() - 1;
    let (means, scales) = standardisation(rows, feature_count, prior.scale_floor);
    let mut model = LogisticModel {
        means,
        scales,
        coefficients: prior.mean.clone(),
    };
    let design: Vec<Vec<f64>> = rows.iter().map(|row| model.design_row(row)).collect();
    let dimension = feature_count + 1;
    let mut hessian = vec![vec![0.0; dimension]; dimension];
    for _ in 0..MAX_ITERATIONS {
        let mut gradient: Vec<f64> = (0..dimension)
            .map(|j| -prior.precision[j] * (model.coefficients[j] - prior.mean[j]))
            .collect();
        hessian = vec![vec![0.0; dimension]; dimension];
        for (j, row) in hessian.iter_mut().enumerate() {
            row[j] = prior.precision[j];
        }
        for ((x, target), weight) in design.iter().zip(targets).zip(weights) {
            let p = sigmoid(dot(x, &model.coefficients))
                .clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
            let curvature = weight * p * (1.0 - p);
            for j in 0..dimension {
                gradient[j] += weight * (target - p) * x[j];
                for k in 0..dimension {
                    hessian[j][k] += curvature * x[j] * x[k];
                }
            }
        }
        let Some(step) = solve(&hessian, &gradient) else {
            return Err(EngineError::SingularFit);
        };
        for (coefficient, delta) in model.coefficients.iter_mut().zip(&step) {
            *coefficient += delta;
        }
        if step.iter().all(|d| d.abs() < CONVERGED_STEP) {
            break;
        }
    }
    if model.coefficients.iter().any(|c| !c.is_finite()) {
        return Err(EngineError::SingularFit);
    }
    Ok(LogisticFit {
        model,
        posterior_precision: hessian,
    })
}

/// Fits a ridge-penalised classifier to yes/no labels.
pub fn fit_classifier(
    rows: &[Vec<f64>],
    labels: &[bool],
    l2: f64,
) -> Result<LogisticModel, EngineError> {
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 || positives == labels.len() {
        return Err(EngineError::SingleClass {
            count: labels.len(),
            outcome: positives > 0,
        });
    }
    let feature_count = rows.first().map_or(0, Vec::len);
    let targets: Vec<f64> = labels.iter().map(|l| f64::from(u8::from(*l))).collect();
    let weights = vec![1.0; rows.len()];
    Ok(fit(rows, &targets, &weights, &Prior::ridge(feature_count, l2))?.model)
}

fn standardisation(
    rows: &[Vec<f64>],
    feature_count: usize,
    scale_floor: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let means: Vec<f64> = (0..feature_count)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let scales = (0..feature_count)
        .map(|j| {
            let spread = (rows.iter().map(|r| (r[j] - means[j]).powi(2)).sum::<f64>() / n).sqrt();
            spread.max(scale_floor)
        })
        .collect();
    (means, scales)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `matrix · x = rhs` by Gaussian elimination with partial pivoting.
pub fn solve(matrix: &[Vec<f64>], rhs: &[f64]) -> Option<Vec<f64>> {
    let n = rhs.len();
    let mut augmented: Vec<Vec<f64>> = matrix
        .iter()
        .zip(rhs)
        .map(|(row, b)| row.iter().copied().chain([*b]).collect())
        .collect();
    for column in 0..n {
        let pivot = (column..n).max_by(|a, b| {
            augmented[*a][column]
                .abs()
                .total_cmp(&augmented[*b][column].abs())
        })?;
        if augmented[pivot][column].abs() < 1e-12 {
            return None;
        }
        augmented.swap(column, pivot);
        for row in column + 1..n {
            let (above, below) = augmented.split_at_mut(row);
            let (pivot_row, target) = (&above[column], &mut below[0]);
            let factor = target[column] / pivot_row[column];
            for (value, pivot_value) in target[column..].iter_mut().zip(&pivot_row[column..]) {
                *value -= factor * pivot_value;
            }
        }
    }
    let mut solution = vec![0.0; n];
    for row in (0..n).rev() {
        let known: f64 = (row + 1..n).map(|k| augmented[row][k] * solution[k]).sum();
        solution[row] = (augmented[row][n] - known) / augmented[row][row];
    }
    Some(solution)
}

/// Deterministic split: every fourth example is held out.
pub fn holdout_split(count: usize) -> (Vec<usize>, Vec<usize>) {
    (0..count).partition(|index| index % HOLDOUT_EVERY != HOLDOUT_EVERY - 1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// How a classifier did on examples it was not trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub trained_on: usize,
    pub held_out: usize,
    pub auc: Option<f64>,
    pub brier_score: f64,
    /// Count-weighted mean gap between predicted and observed rates over the bins.
    pub calibration_error: f64,
    pub calibration: Vec<CalibrationBin>,
}

impl Evaluation {
    pub fn of(trained_on: usize, probabilities: &[f64], labels: &[bool], bins: usize) -> Self {
        let outcomes: Vec<f64> = labels.iter().map(|l| f64::from(u8::from(*l))).collect();
        let brier = probabilities
            .iter()
            .zip(&outcomes)
            .map(|(p, o)| (p - o).powi(2))
            .sum::<f64>()
            / probabilities.len().max(1) as f64;
        let calibration = calibration_bins(probabilities, labels, bins);
        let calibration_error = calibration
            .iter()
            .map(|b| b.count as f64 * (b.mean_predicted - b.observed_rate).abs())
            .sum::<f64>()
            / probabilities.len().max(1) as f64;
        Evaluation {
            trained_on,
            held_out: probabilities.len(),
            auc: auc(probabilities, labels).map(|a| round_to(a, 4)),
            brier_score: round_to(brier, 4),
            calibration_error: round_to(calibration_error, 4),
            calibration,
        }
    }

    /// Confidence earned on the held-out examples: ranking skill over chance, discounted by
    /// miscalibration and by a small held-out set.
    pub fn confidence(&self) -> f64 {
        let Some(auc) = self.auc else { return 0.15 };
        let skill = (2.0 * (auc - 0.5)).clamp(0.0, 1.0);
        let calibration = (1.0 - 3.0 * self.calibration_error).clamp(0.0, 1.0);
        let depth = (self.held_out as f64 / 50.0).min(1.0);
        (skill * calibration * (0.4 + 0.6 * depth)).min(0.95)
    }
}

/// Equal-width probability bins; empty bins are left out.
pub fn calibration_bins(
    probabilities: &[f64],
    labels: &[bool],
    bins: usize,
) -> Vec<CalibrationBin> {
    (0..bins)
        .filter_map(|bin| {
            let lower = bin as f64 / bins as f64;
            let upper = (bin + 1) as f64 / bins as f64;
            let members: Vec<(f64, bool)> = probabilities
                .iter()
                .zip(labels)
                .filter(|(p, _)| **p >= lower && (**p < upper || (bin + 1 == bins && **p <= upper)))
                .map(|(p, l)| (*p, *l))
                .collect();
            if members.is_empty() {
                return None;
            }
            let count = members.len();
            Some(CalibrationBin {
                lower,
                upper,
                count,
                mean_predicted: round_to(
                    members.iter().map(|m| m.0).sum::<f64>() / count as f64,
                    4,
                ),
                observed_rate: round_to(
                    members.iter().filter(|m| m.1).count() as f64 / count as f64,
                    4,
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;
    use rand::Rng;

    #[test]
    fn recovers_planted_coefficients_and_is_calibrated() {
        let mut rng = synthetic::rng(21);
        let rows: Vec<Vec<f64>> = (0..2_000)
            .map(|_| vec![synthetic::normal(&mut rng), synthetic::normal(&mut rng)])
            .collect();
        let labels: Vec<bool> = rows
            .iter()
            .map(|r| rng.random::<f64>() < sigmoid(-0.5 + 1.5 * r[0] - 1.0 * r[1]))
            .collect();
        let model = fit_classifier(&rows, &labels, 1e-3).unwrap();
        // Standardised coefficients divided by the feature scale give the raw slopes back.
        let raw_slope = |j: usize| model.coefficients[j + 1] / model.scales[j];
        assert!((raw_slope(0) - 1.5).abs() < 0.2, "{model:?}");
        assert!((raw_slope(1) + 1.0).abs() < 0.2, "{model:?}");
        let probabilities: Vec<f64> = rows.iter().map(|r| model.probability(r)).collect();
        let evaluation = Evaluation::of(rows.len(), &probabilities, &labels, 10);
        assert!(evaluation.calibration_error < 0.03, "{evaluation:?}");
    }

    #[test]
    fn single_class_and_separable_data_do_not_panic() {
        let rows = vec![vec![0.0], vec![1.0], vec![2.0], vec![3.0]];
        assert!(matches!(
            fit_classifier(&rows, &[true; 4], 1.0),
            Err(EngineError::SingleClass {
                count: 4,
                outcome: true
            })
        ));
        let model = fit_classifier(&rows, &[false, false, true, true], 1.0).unwrap();
        assert!(model.probability(&[3.0]) > model.probability(&[0.0]));
    }

    #[test]
    fn solve_handles_pivoting_and_reports_singular_systems() {
        let solution = solve(&[vec![0.0, 2.0], vec![3.0, 1.0]], &[4.0, 5.0]).unwrap();
        assert!((solution[0] - 1.0).abs() < 1e-12 && (solution[1] - 2.0).abs() < 1e-12);
        assert!(solve(&[vec![1.0, 2.0], vec![2.0, 4.0]], &[1.0, 2.0]).is_none());
    }
}
