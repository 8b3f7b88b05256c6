//! Shared helpers for daily series and scores: dates, seasonal naive, MASE, robust statistics,
//! quantiles of the normal distribution and the area under the ROC curve.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// Daily series repeat weekly.
pub const WEEK: usize = 7;

/// Scales a median absolute deviation to a standard deviation under normal noise.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// One day of a series, as supplied by a caller or drawn in a chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DatedValue {
    pub date: NaiveDate,
    pub value: f64,
}

/// Date of the `index`-th day of a series that starts on `first`.
pub fn date_at(first: NaiveDate, index: usize) -> NaiveDate {
    first + Days::new(index as u64)
}

pub fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

pub fn weekday_at(first: NaiveDate, index: usize) -> Weekday {
    date_at(first, index).weekday()
}

/// Rejects values no model can use: NaN or infinities anywhere.
pub fn validate_finite(values: &[f64]) -> Result<(), EngineError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(EngineError::NonFinite { index }),
        None => Ok(()),
    }
}

/// Rejects anything that cannot be a daily event count: non-finite or negative values.
pub fn validate_counts(values: &[f64]) -> Result<(), EngineError> {
    validate_finite(values)?;
    match values.iter().position(|v| *v < 0.0) {
        Some(index) => Err(EngineError::NegativeCount {
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Splits a supplied `{date, value}` series into its first date and values, requiring
/// consecutive days in order.
pub fn contiguous_values(points: &[DatedValue]) -> Result<(NaiveDate, Vec<f64>), EngineError> {
    let first = points
        .first()
        .ok_or(EngineError::TooShort { needed: 1, got: 0 })?;
    for pair in points.windows(2) {
        if pair[0].date.succ_opt() != Some(pair[1].date) {
            return Err(EngineError::NotDaily {
                previous: pair[0].date,
                next: pair[1].date,
            });
        }
    }
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    validate_finite(&values)?;
    Ok((first.date, values))
}

/// Forecast that repeats the last observed season.
pub fn seasonal_naive(history: &[f64], period: usize, horizon: usize) -> Vec<f64> {
    let n = history.len();
    (0..horizon)
        .map(|k| history[n - period + k % period])
        .collect()
}

/// In-sample mean absolute error of the one-season-back forecast: the MASE denominator.
pub fn seasonal_naive_scale(history: &[f64], period: usize) -> Option<f64> {
    if history.len() <= period {
        return None;
    }
    let errors: Vec<f64> = history
        .windows(period + 1)
        .map(|w| (w[period] - w[0]).abs())
        .collect();
    Some(mean(&errors))
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Linear-interpolated quantile (`q` in 0..=1) of the values; 0 for an empty slice.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// Median absolute deviation from the median (unscaled).
pub fn median_absolute_deviation(values: &[f64]) -> f64 {
    let centre = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    median(&deviations)
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting half. `None` unless both classes are present.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let shared_rank = (start + end) as f64 / 2.0 + 1.0;
        for &index in &order[start..=end] {
            if labels[index] {
                positive_rank_sum += shared_rank;
            }
        }
        start = end + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Rounds a figure for display in `details` without pretending to more precision than it has.
pub fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_naive_repeats_the_last_week() {
        let history: Vec<f64> = (0..14).map(f64::from).collect();
        assert_eq!(
            seasonal_naive(&history, 7, 9),
            vec![7., 8., 9., 10., 11., 12., 13., 7., 8.]
        );
    }

    #[test]
    fn seasonal_naive_scale_is_the_mean_weekly_difference() {
        let history: Vec<f64> = (0..14).map(|i| f64::from(i) * 2.0).collect();
        assert_eq!(seasonal_naive_scale(&history, 7), Some(14.0));
        assert_eq!(seasonal_naive_scale(&history[..7], 7), None);
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&values), 2.5);
        assert_eq!(quantile(&values, 0.0), 1.0);
        assert_eq!(quantile(&values, 1.0), 4.0);
        assert_eq!(median_absolute_deviation(&[1.0, 2.0, 3.0, 4.0, 100.0]), 1.0);
    }

    #[test]
    fn normal_quantile_matches_tabulated_values() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.9) - 1.281_552).abs() < 1e-5);
        assert!((normal_quantile(0.005) + 2.575_829).abs() < 1e-5);
        assert!(normal_quantile(0.5).abs() < 1e-9);
    }

    #[test]
    fn auc_counts_correctly_ordered_pairs_and_ties() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &labels), Some(0.5));
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn count_validation_names_the_offending_position() {
        assert_eq!(
            validate_counts(&[1.0, f64::NAN]),
            Err(EngineError::NonFinite { index: 1 })
        );
        assert_eq!(
            validate_counts(&[1.0, 2.0, -3.0]),
            Err(EngineError::NegativeCount {
                index: 2,
                value: -3.0
            })
        );
        assert_eq!(validate_counts(&[0.0, 5.0]), Ok(()));
    }

    #[test]
    fn supplied_series_must_be_consecutive_days() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let gap = [
            DatedValue {
                date: day,
                value: 1.0,
            },
            DatedValue {
                date: date_at(day, 2),
                value: 1.0,
            },
        ];
        assert!(matches!(
            contiguous_values(&gap),
            Err(EngineError::NotDaily { .. })
        ));
        let ok = [
            DatedValue {
                date: day,
                value: 1.0,
            },
            DatedValue {
                date: date_at(day, 1),
                value: 2.0,
            },
        ];
        assert_eq!(contiguous_values(&ok), Ok((day, vec![1.0, 2.0])));
    }
}
