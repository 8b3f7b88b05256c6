//! Anomalies within one daily series (event volume or a numeric field's daily mean).
//!
//! Each day is compared with a seasonal baseline, the median of the same weekday over the
//! previous weeks, and the deviation is scaled by a robust spread: the MAD of the trailing
//! residuals (for counts never below the Poisson spread √baseline, so quiet series do not flag
//! every extra event). Medians and MADs ignore the spikes they are looking for, so one anomaly
//! does not hide the next.
//!
//! Level shifts are found separately: the series is deseasonalised with robust weekday effects
//! and the most significant two-segment split in mean is tested against the noise measured from
//! day-to-day differences (which a shift barely affects). A steady trend also shows as a shift;
//! the volume forecast is the place that speaks to trends.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::content::{Confidence, InsightContent, InsightDetails};
use crate::error::EngineError;
use crate::series::{
    self, DatedValue, MAD_TO_SIGMA, WEEK, date_at, median, median_absolute_deviation, round_to,
    weekday_at, weekday_name,
};

pub const MODEL_NAME: &str = "anomaly_detection";
/// Three weeks for the first baseline, one week of residuals to measure the spread, one week
/// to scan.
pub const MIN_POINTS: usize = 5 * WEEK;
const BASELINE_WEEKS: usize = 8;
const MIN_BASELINE_WEEKS: usize = 3;
const SPREAD_WINDOW_DAYS: usize = 8 * WEEK;
const MIN_SPREAD_RESIDUALS: usize = WEEK;
/// Robust z-score from which a day is flagged.
pub const FLAG_Z: f64 = 3.5;
const MEDIUM_Z: f64 = 5.0;
const HIGH_Z: f64 = 8.0;
/// Shortest segment a level shift may split off.
const MIN_SEGMENT_DAYS: usize = WEEK;
/// Two-segment t statistic from which a shift is reported; well above what the maximum over
/// all splits of pure noise reaches.
pub const CHANGEPOINT_MIN_STATISTIC: f64 = 6.0;
/// Anomalies this recent make the headline of the insight.
const RECENT_DAYS: usize = WEEK;

/// What the values are, which decides the smallest plausible spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// Daily event counts: Poisson noise at least.
    Counts,
    /// A numeric field's daily mean: only the measured spread.
    Measurements,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Spike,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    fn from_z(z: f64) -> Self {
        match z.abs() {
            z if z >= HIGH_Z => Severity::High,
            z if z >= MEDIUM_Z => Severity::Medium,
            _ => Severity::Low,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub date: NaiveDate,
    pub value: f64,
    /// The usual value for that weekday.
    pub expected: f64,
    pub robust_z: f64,
    pub direction: Direction,
    pub severity: Severity,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changepoint {
    /// First day at the new level.
    pub date: NaiveDate,
    pub mean_before: f64,
    pub mean_after: f64,
    pub statistic: f64,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyScan {
    /// Every scanned day with its seasonal baseline, for the chart.
    pub baseline: Vec<DatedValue>,
    pub anomalies: Vec<Anomaly>,
    pub changepoint: Option<Changepoint>,
}

/// `details` of an anomaly insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDetails {
    pub metric: String,
    pub series_kind: SeriesKind,
    pub history: Vec<DatedValue>,
    pub threshold_z: f64,
    pub scan: AnomalyScan,
}

/// Scans every day that has enough history for anomalies and the whole series for a level
/// shift. Values are consecutive days from `first_date`; counts must be non-negative.
pub fn detect_anomalies(
    metric: &str,
    first_date: NaiveDate,
    values: &[f64],
    kind: SeriesKind,
) -> Result<AnomalyScan, EngineError> {
    validate(values, kind)?;
    if values.len() < MIN_POINTS {
        return Err(EngineError::TooShort {
            needed: MIN_POINTS,
            got: values.len(),
        });
    }
    let baselines: Vec<Option<f64>> = (0..values.len())
        .map(|t| seasonal_baseline(values, t))
        .collect();
    let residuals: Vec<Option<f64>> = values
        .iter()
        .zip(&baselines)
        .map(|(value, baseline)| baseline.map(|b| value - b))
        .collect();
    let mut baseline_points = Vec::new();
    let mut anomalies = Vec::new();
    for (t, value) in values.iter().enumerate() {
        let Some(expected) = baselines[t] else {
            continue;
        };
        let window = &residuals[t.saturating_sub(SPREAD_WINDOW_DAYS)..t];
        let trailing: Vec<f64> = window.iter().flatten().copied().collect();
        if trailing.len() < MIN_SPREAD_RESIDUALS {
            continue;
        }
        baseline_points.push(DatedValue {
            date: date_at(first_date, t),
            value: expected,
        });
        let spread = robust_spread(&trailing, expected, kind);
        let deviation = value - expected;
        let robust_z = deviation / spread;
        if robust_z.abs() >= FLAG_Z {
            let direction = if robust_z > 0.0 {
                Direction::Spike
            } else {
                Direction::Drop
            };
            anomalies.push(Anomaly {
                date: date_at(first_date, t),
                value: *value,
                expected,
                robust_z: round_to(robust_z, 2),
                direction,
                severity: Severity::from_z(robust_z),
                explanation: explain(metric, first_date, t, *value, expected, direction),
            });
        }
    }
    Ok(AnomalyScan {
        baseline: baseline_points,
        anomalies,
        changepoint: detect_changepoint(metric, first_date, values),
    })
}

/// Insight for one series: the most severe recent anomaly (or a level shift, or "nothing
/// unusual"), with the scan behind it. Too little history gives "not enough data" content.
pub fn anomaly_insight(
    metric: &str,
    first_date: NaiveDate,
    values: &[f64],
    kind: SeriesKind,
    generated_at: DateTime<Utc>,
) -> Result<InsightContent, EngineError> {
    validate(values, kind)?;
    if values.len() < MIN_POINTS {
        return Ok(InsightContent::not_enough_data(
            MODEL_NAME,
            &format!("{metric} anomalies"),
            values.len(),
            MIN_POINTS,
            "days",
            generated_at,
        ));
    }
    let scan = detect_anomalies(metric, first_date, values, kind)?;
    let scanned_weeks = scan.baseline.len() as f64 / WEEK as f64;
    let depth = (scanned_weeks / 4.0).min(1.0);
    let recent_start = date_at(first_date, values.len().saturating_sub(RECENT_DAYS));
    let headline = scan
        .anomalies
        .iter()
        .filter(|a| a.date >= recent_start)
        .max_by(|a, b| a.robust_z.abs().total_cmp(&b.robust_z.abs()));
    let recent_shift = scan.changepoint.as_ref().filter(|c| c.date >= recent_start);
    let (title, description, recommendation, evidence) = match (headline, recent_shift) {
        (Some(anomaly), _) => (
            format!("Unusual {metric} activity"),
            anomaly.explanation.clone(),
            match anomaly.direction {
                Direction::Spike => format!(
                    "Check what drove the {metric} spike (a campaign, a bot, a duplicate \
                     integration) before relying on that day's figures."
                ),
                Direction::Drop => format!(
                    "Check that {metric} events are still being sent; drops this large are often \
                     a broken integration."
                ),
            },
            // Evidence grows with how far past the flag threshold the day is.
            (0.5 + (anomaly.robust_z.abs() - FLAG_Z) / (2.0 * FLAG_Z)).min(1.0),
        ),
        (None, Some(shift)) => (
            format!("{metric} changed level"),
            shift.explanation.clone(),
            format!(
                "Find out what changed around {} and whether it should last.",
                shift.date
            ),
            (shift.statistic / (2.0 * CHANGEPOINT_MIN_STATISTIC)).min(1.0),
        ),
        (None, None) => (
            format!("No unusual {metric} activity"),
            format!(
                "Every {metric} value in the last {RECENT_DAYS} days was within the usual range \
                 for its weekday."
            ),
            "No action needed.".to_owned(),
            0.9,
        ),
    };
    let confidence = Confidence::clamped(evidence * (0.5 + 0.5 * depth) * 0.95);
    let history = values
        .iter()
        .enumerate()
        .map(|(t, v)| DatedValue {
            date: date_at(first_date, t),
            value: *v,
        })
        .collect();
    Ok(InsightContent {
        title,
        description,
        confidence,
        recommendation,
        model: MODEL_NAME.to_owned(),
        generated_at,
        details: InsightDetails::Anomalies(AnomalyDetails {
            metric: metric.to_owned(),
            series_kind: kind,
            history,
            threshold_z: FLAG_Z,
            scan,
        }),
    })
}

/// The most significant level shift, if it clears [`CHANGEPOINT_MIN_STATISTIC`].
pub fn detect_changepoint(
    metric: &str,
    first_date: NaiveDate,
    values: &[f64],
) -> Option<Changepoint> {
    let n = values.len();
    if n < 2 * MIN_SEGMENT_DAYS + WEEK {
        return None;
    }
    let adjusted = deseasonalise(values);
    let differences: Vec<f64> = adjusted.windows(2).map(|w| w[1] - w[0]).collect();
    let noise = MAD_TO_SIGMA * median_absolute_deviation(&differences) / 2f64.sqrt();
    if noise <= 0.0 {
        return None;
    }
    let mut prefix = vec![0.0; n + 1];
    for (t, value) in adjusted.iter().enumerate() {
        prefix[t + 1] = prefix[t] + value;
    }
    let total = prefix[n];
    let (split, statistic) = (MIN_SEGMENT_DAYS..=n - MIN_SEGMENT_DAYS)
        .map(|k| {
            let (before, after) = (k as f64, (n - k) as f64);
            let shift = (total - prefix[k]) / after - prefix[k] / before;
            let standard_error = noise * (1.0 / before + 1.0 / after).sqrt();
            (k, (shift / standard_error).abs())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if statistic < CHANGEPOINT_MIN_STATISTIC {
        return None;
    }
    let mean_before = series::mean(&values[..split]);
    let mean_after = series::mean(&values[split..]);
    let date = date_at(first_date, split);
    let change = if mean_before.abs() > 0.0 {
        format!(" ({:+.0}%)", (mean_after / mean_before - 1.0) * 100.0)
    } else {
        String::new()
    };
    Some(Changepoint {
        date,
        mean_before: round_to(mean_before, 2),
        mean_after: round_to(mean_after, 2),
        statistic: round_to(statistic, 2),
        explanation: format!(
            "{metric} moved from about {mean_before:.0} to {mean_after:.0} a day{change} from {date}."
        ),
    })
}

fn validate(values: &[f64], kind: SeriesKind) -> Result<(), EngineError> {
    match kind {
        SeriesKind::Counts => series::validate_counts(values),
        SeriesKind::Measurements => series::validate_finite(values),
    }
}

/// Median of the same weekday over up to [`BASELINE_WEEKS`] previous weeks.
fn seasonal_baseline(values: &[f64], t: usize) -> Option<f64> {
    let weeks = (t / WEEK).min(BASELINE_WEEKS);
    if weeks < MIN_BASELINE_WEEKS {
        return None;
    }
    let same_weekday: Vec<f64> = (1..=weeks).map(|j| values[t - j * WEEK]).collect();
    Some(median(&same_weekday))
}

fn robust_spread(trailing_residuals: &[f64], expected: f64, kind: SeriesKind) -> f64 {
    let measured = MAD_TO_SIGMA * median_absolute_deviation(trailing_residuals);
    match kind {
        SeriesKind::Counts => measured.max(expected.max(1.0).sqrt()),
        // A perfectly flat history still needs a finite scale: any real deviation from it is
        // flagged, rounding noise is not.
        SeriesKind::Measurements => measured.max(1e-6 * expected.abs().max(1.0)),
    }
}

/// Removes robust weekday effects: per weekday, the median deviation from the mean of its own
/// calendar week (so a level shift elsewhere does not bend the pattern).
fn deseasonalise(values: &[f64]) -> Vec<f64> {
    let mut deviations: [Vec<f64>; WEEK] = Default::default();
    for block in values.chunks_exact(WEEK) {
        let block_mean = series::mean(block);
        for (day, value) in block.iter().enumerate() {
            deviations[day].push(value - block_mean);
        }
    }
    let effects: Vec<f64> = deviations.iter().map(|d| median(d)).collect();
    values
        .iter()
        .enumerate()
        .map(|(t, v)| v - effects[t % WEEK])
        .collect()
}

fn explain(
    metric: &str,
    first_date: NaiveDate,
    t: usize,
    value: f64,
    expected: f64,
    direction: Direction,
) -> String {
    let date = date_at(first_date, t);
    let weekday = weekday_name(weekday_at(first_date, t));
    let comparison = match direction {
        _ if expected <= 0.0 => "against".to_owned(),
        Direction::Spike => format!("{:.1}x", value / expected),
        Direction::Drop => format!("{:.0}% below", (1.0 - value / expected) * 100.0),
    };
    format!(
        "{metric} on {date} was {}, {comparison} the usual {} for a {weekday}.",
        display_number(value),
        display_number(expected)
    )
}

fn display_number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, WEEKLY_PATTERN};
    use chrono::TimeZone;

    fn day_one() -> NaiveDate {
        // A Monday, so day t falls on WEEKLY_PATTERN[t % 7]'s weekday.
        NaiveDate::from_ymd_opt(2026, 8, 3).unwrap()
    }

    fn generated_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 6, 0, 0).unwrap()
    }

    fn weekly_counts(seed: u64, days: usize, level: f64) -> Vec<f64> {
        let mut rng = synthetic::rng(seed);
        (0..days)
            .map(|t| synthetic::poisson(&mut rng, level * WEEKLY_PATTERN[t % 7]))
            .collect()
    }

    #[test]
    fn planted_spike_and_drop_are_found_on_their_day_with_their_direction() {
        let mut counts = weekly_counts(1, 112, 130.0);
        counts[95] = 420.0;
        counts[103] = 15.0;
        let scan = detect_anomalies("page_view", day_one(), &counts, SeriesKind::Counts).unwrap();
        let spike = scan
            .anomalies
            .iter()
            .find(|a| a.date == date_at(day_one(), 95))
            .unwrap();
        assert_eq!(spike.direction, Direction::Spike);
        assert_eq!(spike.severity, Severity::High);
        assert!(
            spike
                .explanation
                .starts_with(&format!("page_view on {} was 420, 3.", spike.date))
        );
        assert!(
            spike.explanation.ends_with("for a Friday."),
            "{}",
            spike.explanation
        );
        let drop = scan
            .anomalies
            .iter()
            .find(|a| a.date == date_at(day_one(), 103))
            .unwrap();
        assert_eq!(drop.direction, Direction::Drop);
        assert!(
            drop.explanation.contains("% below the usual"),
            "{}",
            drop.explanation
        );
        assert!(scan.anomalies.len() <= 3, "{:?}", scan.anomalies);
    }

    #[test]
    fn planted_drop_in_a_measured_mean_is_found() {
        let mut rng = synthetic::rng(9);
        let mut means: Vec<f64> = (0..70)
            .map(|t| 40.0 + 5.0 * WEEKLY_PATTERN[t % 7] + synthetic::normal(&mut rng))
            .collect();
        means[66] -= 12.0;
        let scan =
            detect_anomalies("order_value", day_one(), &means, SeriesKind::Measurements).unwrap();
        let found: Vec<_> = scan
            .anomalies
            .iter()
            .map(|a| (a.date, a.direction))
            .collect();
        assert!(
            found.contains(&(date_at(day_one(), 66), Direction::Drop)),
            "{found:?}"
        );
    }

    #[test]
    fn clean_noise_flags_fewer_than_one_day_in_a_hundred() {
        let (series_count, days) = (200, 91);
        let (mut flagged, mut scanned, mut shifts) = (0, 0, 0);
        for seed in 0..series_count {
            let counts = weekly_counts(1_000 + seed, days, 80.0);
            let scan =
                detect_anomalies("page_view", day_one(), &counts, SeriesKind::Counts).unwrap();
            flagged += scan.anomalies.len();
            scanned += scan.baseline.len();
            shifts += usize::from(scan.changepoint.is_some());
        }
        let per_hundred_days = 100.0 * flagged as f64 / scanned as f64;
        assert!(
            per_hundred_days < 1.0,
            "{per_hundred_days} flagged days per 100"
        );
        assert!(
            shifts <= series_count as usize / 20,
            "{shifts} false level shifts"
        );
    }

    #[test]
    fn planted_level_shift_is_located_within_three_days() {
        for seed in 0..10 {
            let mut counts = weekly_counts(50 + seed, 120, 100.0);
            for value in &mut counts[66..] {
                *value = (*value * 1.5).round();
            }
            let shift = detect_changepoint("page_view", day_one(), &counts).unwrap();
            let offset = (shift.date - date_at(day_one(), 66)).num_days().abs();
            assert!(offset <= 3, "seed {seed}: shift found {offset} days away");
            assert!(shift.mean_after > shift.mean_before * 1.3);
        }
    }

    #[test]
    fn insight_headlines_a_recent_anomaly_with_earned_confidence() {
        let mut counts = weekly_counts(4, 84, 130.0);
        counts[81] = 500.0;
        let content = anomaly_insight(
            "page_view",
            day_one(),
            &counts,
            SeriesKind::Counts,
            generated_at(),
        )
        .unwrap();
        assert_eq!(content.title, "Unusual page_view activity");
        assert!(
            content
                .description
                .contains(&date_at(day_one(), 81).to_string())
        );
        assert!(
            content.confidence.value() > 0.7,
            "{}",
            content.confidence.value()
        );
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["details"]["kind"], "anomalies");
        assert_eq!(
            json["details"]["scan"]["anomalies"][0]["direction"],
            "spike"
        );

        let quiet = weekly_counts(4, 84, 130.0);
        let calm = anomaly_insight(
            "page_view",
            day_one(),
            &quiet,
            SeriesKind::Counts,
            generated_at(),
        )
        .unwrap();
        assert_eq!(calm.title, "No unusual page_view activity");
    }

    #[test]
    fn short_or_invalid_series_give_not_enough_data_or_errors() {
        let content = anomaly_insight(
            "page_view",
            day_one(),
            &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
            SeriesKind::Counts,
            generated_at(),
        )
        .unwrap();
        assert!(content.confidence.value() <= 0.2);
        assert!(matches!(content.details, InsightDetails::NotEnoughData(_)));
        assert_eq!(
            detect_anomalies("x", day_one(), &[1.0; 20], SeriesKind::Counts),
            Err(EngineError::TooShort {
                needed: MIN_POINTS,
                got: 20
            })
        );
        let mut counts = vec![3.0; 40];
        counts[7] = f64::INFINITY;
        assert_eq!(
            detect_anomalies("x", day_one(), &counts, SeriesKind::Counts),
            Err(EngineError::NonFinite { index: 7 })
        );
        counts[7] = -2.0;
        assert!(matches!(
            anomaly_insight("x", day_one(), &counts, SeriesKind::Counts, generated_at()),
            Err(EngineError::NegativeCount { index: 7, .. })
        ));
        counts[7] = -2.0;
        assert!(detect_anomalies("x", day_one(), &counts, SeriesKind::Measurements).is_ok());
        let mut flat = vec![20.0; 40];
        flat[38] = 21.0;
        let scan = detect_anomalies("x", day_one(), &flat, SeriesKind::Measurements).unwrap();
        assert_eq!(scan.anomalies.len(), 1);
        assert!(scan.anomalies[0].robust_z.is_finite());
    }
}
