//! Event volume forecast: daily counts in, a forecast with prediction intervals out, plus a
//! rolling-origin backtest of the same model on the same series.
//!
//! # Model
//! An additive Holt–Winters model with a damped trend and a weekly season (ETS(A,Ad,A)), fitted
//! on `log1p(count)` so weekly swings scale with the level and forecasts never go negative.
//! augurs 0.10 has no seasonal ETS and its MSTL+ETS loses to seasonal-naive on real daily counts
//! (DESIGN.md §8); a seasonal ETS of our own is a few dozen lines, builds in no time and can be
//! made robust where it matters:
//! - one-step errors are clipped at three robust standard deviations (estimated from the MAD of
//!   week-over-week differences) before they update the state, so a single spike does not leak
//!   into the level or the weekly pattern;
//! - smoothing parameters come from a fixed grid minimising the clipped one-step squared error,
//!   which is deterministic and cannot diverge;
//! - the backtest also scores the average of Holt–Winters and seasonal-naive (on the log scale)
//!   and the final forecast uses whichever had the lower error on this series.
//!
//! Intervals come from the model's own in-sample k-step-ahead errors on the log scale (the
//! requested quantile of their absolute values per horizon, never shrinking with the horizon),
//! so they widen as far as this series has shown they should and no further. Point forecasts are back-transformed medians.
//!
//! `confidence` is earned from the backtest: accuracy (1 − WAPE), skill against seasonal-naive,
//! calibration of the intervals and how many origins were tested. Without a backtest it stays
//! at or below 0.2.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::content::{Confidence, InsightContent, InsightDetails};
use crate::error::EngineError;
use crate::series::{
    self, DatedValue, MAD_TO_SIGMA, WEEK, date_at, median_absolute_deviation, normal_quantile,
    round_to, seasonal_naive, seasonal_naive_scale,
};

pub const MODEL_NAME: &str = "event_volume_forecast";
/// Two full weeks: one to initialise the weekly pattern, one to start learning the trend.
pub const MIN_POINTS: usize = 2 * WEEK;
/// A backtest needs a two-week training window and at least one week to score.
const MIN_POINTS_FOR_BACKTEST: usize = MIN_POINTS + WEEK;
const MAX_BACKTEST_ORIGINS: usize = 6;
const MAX_HORIZON: usize = 366;
const CLIP_SIGMAS: f64 = 3.0;
/// Fewer k-step errors than this give no usable spread; the spread is extrapolated instead.
const MIN_ERRORS_PER_STEP: usize = 7;
/// Candidate weights of Holt–Winters against seasonal-naive, preferred in this order on ties.
const BLEND_WEIGHTS: [f64; 2] = [1.0, 0.5];
const HISTORY_SHOWN_DAYS: usize = 8 * WEEK;

/// Days ahead to forecast, 1..=366.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct Horizon(usize);

impl Horizon {
    pub fn new(days: usize) -> Result<Self, EngineError> {
        if (1..=MAX_HORIZON).contains(&days) {
            Ok(Horizon(days))
        } else {
            Err(EngineError::InvalidHorizon {
                got: days,
                max: MAX_HORIZON,
            })
        }
    }

    pub fn days(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for Horizon {
    type Error = EngineError;

    fn try_from(days: usize) -> Result<Self, Self::Error> {
        Horizon::new(days)
    }
}

impl From<Horizon> for usize {
    fn from(horizon: Horizon) -> usize {
        horizon.0
    }
}

/// Coverage of a prediction interval in percent, strictly between 0 and 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct IntervalLevel(f64);

impl IntervalLevel {
    pub fn new(percent: f64) -> Result<Self, EngineError> {
        if percent.is_finite() && percent > 0.0 && percent < 100.0 {
            Ok(IntervalLevel(percent))
        } else {
            Err(EngineError::InvalidLevel { got: percent })
        }
    }

    /// The levels shown when the caller asks for none in particular: 80% and 95%.
    pub fn defaults() -> Vec<IntervalLevel> {
        vec![IntervalLevel(80.0), IntervalLevel(95.0)]
    }

    pub fn percent(self) -> f64 {
        self.0
    }

    fn fraction(self) -> f64 {
        self.0 / 100.0
    }

    fn normal_multiplier(self) -> f64 {
        normal_quantile(0.5 + self.fraction() / 2.0)
    }
}

impl TryFrom<f64> for IntervalLevel {
    type Error = EngineError;

    fn try_from(percent: f64) -> Result<Self, Self::Error> {
        IntervalLevel::new(percent)
    }
}

impl From<IntervalLevel> for f64 {
    fn from(level: IntervalLevel) -> f64 {
        level.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionInterval {
    /// Percent, e.g. 80 or 95.
    pub level: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    pub date: NaiveDate,
    pub value: f64,
    pub intervals: Vec<PredictionInterval>,
}

/// The scale the model is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitScale {
    /// `log1p(y)`: counts and any other non-negative series.
    Log1p,
    /// The values themselves: supplied series with negative values.
    Identity,
}

impl FitScale {
    fn forward(self, value: f64) -> f64 {
        match self {
            FitScale::Log1p => value.ln_1p(),
            FitScale::Identity => value,
        }
    }

    fn inverse(self, value: f64) -> f64 {
        match self {
            FitScale::Log1p => value.exp_m1().max(0.0),
            FitScale::Identity => value,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastMethod {
    HoltWinters,
    /// Mean of Holt–Winters and seasonal-naive on the fitted scale.
    HoltWintersSeasonalNaiveMean,
}

impl ForecastMethod {
    fn from_weight(weight: f64) -> Self {
        if weight >= 1.0 {
            ForecastMethod::HoltWinters
        } else {
            ForecastMethod::HoltWintersSeasonalNaiveMean
        }
    }

    fn holt_winters_weight(self) -> f64 {
        match self {
            ForecastMethod::HoltWinters => 1.0,
            ForecastMethod::HoltWintersSeasonalNaiveMean => 0.5,
        }
    }
}

/// Smoothing parameters of the damped-trend Holt–Winters model (error-correction form).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub phi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalCoverage {
    pub level: f64,
    /// Share of backtest actuals that fell inside the interval.
    pub observed: f64,
}

/// Rolling-origin backtest of the forecast on the series itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    pub origins: usize,
    pub horizon: usize,
    /// Mean absolute scaled error of the model (scale: in-sample weekly seasonal-naive error).
    pub mase: Option<f64>,
    /// The same figure for seasonal-naive forecasts from the same origins.
    pub seasonal_naive_mase: Option<f64>,
    /// Model MAE divided by seasonal-naive MAE over the same forecasts; below 1 beats it.
    pub relative_mae: Option<f64>,
    /// Sum of absolute errors over sum of actuals.
    pub wape: Option<f64>,
    pub coverage: Vec<IntervalCoverage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesForecast {
    pub method: ForecastMethod,
    pub fit_scale: FitScale,
    pub smoothing: Smoothing,
    pub points: Vec<ForecastPoint>,
    pub backtest: Option<Backtest>,
}

/// `details` of a volume forecast insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastDetails {
    pub event_type: String,
    /// Recent history behind the chart.
    pub history: Vec<DatedValue>,
    pub forecast: SeriesForecast,
}

/// Forecasts daily event counts starting on `first_date`, one value per consecutive day.
///
/// The caller fills days without events with 0. Errors on NaN, infinite or negative counts and
/// on fewer than [`MIN_POINTS`] days.
pub fn forecast_counts(
    first_date: NaiveDate,
    counts: &[f64],
    horizon: Horizon,
    levels: &[IntervalLevel],
) -> Result<SeriesForecast, EngineError> {
    series::validate_counts(counts)?;
    forecast_values(first_date, counts, FitScale::Log1p, horizon, levels)
}

/// Forecasts a supplied `{date, value}` series (the `predict` endpoint). Dates must be
/// consecutive days; values may be negative, in which case the model is fitted on the values
/// themselves instead of `log1p`.
pub fn forecast_series(
    points: &[DatedValue],
    horizon: Horizon,
    levels: &[IntervalLevel],
) -> Result<SeriesForecast, EngineError> {
    let (first_date, values) = series::contiguous_values(points)?;
    let fit_scale = if values.iter().all(|v| *v >= 0.0) {
        FitScale::Log1p
    } else {
        FitScale::Identity
    };
    forecast_values(first_date, &values, fit_scale, horizon, levels)
}

/// Insight for one event type's daily counts: forecast, backtest figures and earned confidence.
/// Too little history gives "not enough data" content instead of an error.
pub fn volume_forecast_insight(
    event_type: &str,
    first_date: NaiveDate,
    counts: &[f64],
    horizon: Horizon,
    levels: &[IntervalLevel],
    generated_at: DateTime<Utc>,
) -> Result<InsightContent, EngineError> {
    series::validate_counts(counts)?;
    if counts.len() < MIN_POINTS {
        return Ok(InsightContent::not_enough_data(
            MODEL_NAME,
            &format!("{event_type} volume"),
            counts.len(),
            MIN_POINTS,
            "days",
            generated_at,
        ));
    }
    let forecast = forecast_counts(first_date, counts, horizon, levels)?;
    let confidence = confidence_from_backtest(forecast.backtest.as_ref());
    let h = horizon.days();
    let expected_total: f64 = forecast.points.iter().map(|p| p.value).sum();
    let recent = &counts[counts.len().saturating_sub(h)..];
    let recent_daily = series::mean(recent);
    let expected_daily = expected_total / h as f64;
    let change = if recent_daily > 0.0 {
        expected_daily / recent_daily - 1.0
    } else {
        0.0
    };
    let direction = if change > 0.1 {
        format!("up {:.0}%", change * 100.0)
    } else if change < -0.1 {
        format!("down {:.0}%", -change * 100.0)
    } else {
        "about the same".to_owned()
    };
    let description = format!(
        "Expect about {expected_total:.0} {event_type} events over the next {h} days \
         ({expected_daily:.0} a day), {direction} compared with the last {} days.",
        recent.len()
    );
    let accuracy_note = match forecast.backtest.as_ref().and_then(|b| b.relative_mae) {
        Some(relative) if relative < 1.0 => format!(
            " On past weeks this forecast was {:.0}% more accurate than repeating last week.",
            (1.0 - relative) * 100.0
        ),
        Some(_) => " On past weeks it did no better than repeating last week.".to_owned(),
        None => " The history is too short to check its accuracy yet.".to_owned(),
    };
    let recommendation = if change > 0.1 {
        format!("Plan capacity for higher {event_type} volume over the next {h} days.")
    } else if change < -0.1 {
        format!("Look into what is driving {event_type} volume down before it shows up in results.")
    } else {
        format!("{event_type} volume is steady; no action needed.")
    };
    let history_start = counts.len().saturating_sub(HISTORY_SHOWN_DAYS);
    let history = counts[history_start..]
        .iter()
        .enumerate()
        .map(|(i, value)| DatedValue {
            date: date_at(first_date, history_start + i),
            value: *value,
        })
        .collect();
    Ok(InsightContent {
        title: format!("{event_type} volume forecast"),
        description: description + &accuracy_note,
        confidence,
        recommendation,
        model: MODEL_NAME.to_owned(),
        generated_at,
        details: InsightDetails::VolumeForecast(ForecastDetails {
            event_type: event_type.to_owned(),
            history,
            forecast,
        }),
    })
}

/// Confidence earned by the backtest: accuracy × skill over seasonal-naive × interval
/// calibration, discounted when few origins were tested; 0.15 when there was no backtest.
pub fn confidence_from_backtest(backtest: Option<&Backtest>) -> Confidence {
    let Some(backtest) = backtest else {
        return Confidence::clamped(0.15);
    };
    let accuracy = backtest
        .wape
        .map_or(0.0, |wape| (1.0 - wape).clamp(0.0, 1.0));
    let skill = backtest
        .relative_mae
        .map_or(1.0, |relative| (1.0 / relative).min(1.0));
    let worst_gap = backtest
        .coverage
        .iter()
        .map(|c| (c.level / 100.0 - c.observed).max(0.0))
        .fold(0.0, f64::max);
    let calibration = (1.0 - 2.0 * worst_gap).clamp(0.0, 1.0);
    let depth = (backtest.origins as f64 / 4.0).min(1.0);
    Confidence::clamped((accuracy * skill * calibration * (0.5 + 0.5 * depth)).min(0.95))
}

fn forecast_values(
    first_date: NaiveDate,
    values: &[f64],
    fit_scale: FitScale,
    horizon: Horizon,
    levels: &[IntervalLevel],
) -> Result<SeriesForecast, EngineError> {
    if values.len() < MIN_POINTS {
        return Err(EngineError::TooShort {
            needed: MIN_POINTS,
            got: values.len(),
        });
    }
    let fitted: Vec<f64> = values.iter().map(|v| fit_scale.forward(*v)).collect();
    let backtest = run_backtest(values, &fitted, fit_scale, horizon.days(), levels);
    let method = backtest.as_ref().map_or(
        ForecastMethod::HoltWintersSeasonalNaiveMean,
        |(method, _)| *method,
    );
    let model = Model::fit(&fitted, method.holt_winters_weight(), horizon.days());
    let points = model
        .forecast(horizon.days(), levels)
        .into_iter()
        .enumerate()
        .map(|(k, step)| ForecastPoint {
            date: date_at(first_date, values.len() + k),
            value: fit_scale.inverse(step.centre),
            intervals: step
                .bounds
                .iter()
                .zip(levels)
                .map(|((lower, upper), level)| PredictionInterval {
                    level: level.percent(),
                    lower: fit_scale.inverse(*lower),
                    upper: fit_scale.inverse(*upper),
                })
                .collect(),
        })
        .collect();
    Ok(SeriesForecast {
        method,
        fit_scale,
        smoothing: model.smoothing,
        points,
        backtest: backtest.map(|(_, backtest)| backtest),
    })
}

#[derive(Debug, Clone, Copy)]
struct State {
    level: f64,
    trend: f64,
    /// Indexed by absolute day number modulo the week.
    seasonal: [f64; WEEK],
}

impl State {
    /// Level and trend from the means of the first two weeks, the weekly pattern from both
    /// weeks' deviations around their own mean.
    fn initial(fitted: &[f64]) -> Self {
        let first = series::mean(&fitted[..WEEK]);
        let second = series::mean(&fitted[WEEK..2 * WEEK]);
        let mut seasonal = [0.0; WEEK];
        for (day, slot) in seasonal.iter_mut().enumerate() {
            *slot = ((fitted[day] - first) + (fitted[day + WEEK] - second)) / 2.0;
        }
        State {
            level: first,
            trend: (second - first) / WEEK as f64,
            seasonal,
        }
    }

    /// Forecast for day `next + steps - 1`, made after observing days `..next`.
    fn forecast(&self, phi: f64, next: usize, steps: usize) -> f64 {
        let damped: f64 = (1..=steps).map(|i| phi.powi(i as i32)).sum();
        self.level + damped * self.trend + self.seasonal[(next + steps - 1) % WEEK]
    }

    fn update(&mut self, smoothing: Smoothing, day: usize, error: f64) {
        self.level += smoothing.phi * self.trend + smoothing.alpha * error;
        self.trend = smoothing.phi * self.trend + smoothing.beta * error;
        self.seasonal[day % WEEK] += smoothing.gamma * error;
    }
}

/// Robust clip for one-step errors: a few standard deviations of the noise, measured from the
/// MAD of week-over-week differences so spikes and trends do not inflate it.
fn error_clip(fitted: &[f64]) -> f64 {
    let weekly_differences: Vec<f64> = fitted.windows(WEEK + 1).map(|w| w[WEEK] - w[0]).collect();
    let noise = MAD_TO_SIGMA * median_absolute_deviation(&weekly_differences) / 2f64.sqrt();
    if noise > 0.0 {
        CLIP_SIGMAS * noise
    } else {
        f64::INFINITY
    }
}

/// Runs the filter over `fitted`, calling `observe(t, state)` after each day is absorbed.
/// Returns the final state, the clipped one-step squared error and the cleaned series (each
/// day's value with its one-step error clipped, which only depends on earlier days).
fn filter(
    fitted: &[f64],
    smoothing: Smoothing,
    clip: f64,
    mut observe: impl FnMut(usize, &State),
) -> (State, f64, Vec<f64>) {
    let mut state = State::initial(fitted);
    let mut clipped_squared_error = 0.0;
    let mut cleaned = Vec::with_capacity(fitted.len());
    for (day, value) in fitted.iter().enumerate() {
        let expected = state.forecast(smoothing.phi, day, 1);
        let error = (value - expected).clamp(-clip, clip);
        if day >= WEEK {
            clipped_squared_error += error * error;
        }
        cleaned.push(expected + error);
        state.update(smoothing, day, error);
        observe(day, &state);
    }
    (state, clipped_squared_error, cleaned)
}

fn fit_smoothing(fitted: &[f64], clip: f64) -> Smoothing {
    const ALPHAS: [f64; 5] = [0.05, 0.1, 0.2, 0.3, 0.5];
    const TREND_SHARES: [f64; 3] = [0.0, 0.02, 0.1];
    const SEASON_SHARES: [f64; 3] = [0.05, 0.15, 0.3];
    const PHIS: [f64; 3] = [0.8, 0.9, 0.98];
    let mut best = (
        f64::INFINITY,
        Smoothing {
            alpha: 0.2,
            beta: 0.0,
            gamma: 0.1,
            phi: 0.9,
        },
    );
    for alpha in ALPHAS {
        for trend_share in TREND_SHARES {
            for season_share in SEASON_SHARES {
                for phi in PHIS {
                    let smoothing = Smoothing {
                        alpha,
                        beta: alpha * trend_share,
                        gamma: (1.0 - alpha) * season_share,
                        phi,
                    };
                    let (_, loss, _) = filter(fitted, smoothing, clip, |_, _| {});
                    if loss < best.0 {
                        best = (loss, smoothing);
                    }
                }
            }
        }
    }
    best.1
}

struct Step {
    centre: f64,
    /// (lower, upper) per requested level, on the fitted scale.
    bounds: Vec<(f64, f64)>,
}

struct Model {
    smoothing: Smoothing,
    final_state: State,
    /// The series with outliers clipped, feeding the seasonal-naive half of the blend.
    cleaned: Vec<f64>,
    holt_winters_weight: f64,
    /// Absolute in-sample k-step-ahead errors on the fitted scale, for k = 1..=horizon.
    absolute_errors: Vec<Vec<f64>>,
    /// Noise level assumed where the series is too short to have shown its errors.
    fallback_noise: f64,
}

impl Model {
    fn fit(fitted: &[f64], holt_winters_weight: f64, horizon: usize) -> Self {
        let clip = error_clip(fitted);
        let smoothing = fit_smoothing(fitted, clip);
        let (final_state, _, cleaned) = filter(fitted, smoothing, clip, |_, _| {});
        let n = fitted.len();
        let mut absolute_errors = vec![Vec::new(); horizon];
        filter(fitted, smoothing, clip, |day, state| {
            let next = day + 1;
            if next < MIN_POINTS {
                return;
            }
            for steps in 1..=horizon.min(n - next) {
                let centre = blend(&cleaned, next, steps, state, smoothing, holt_winters_weight);
                absolute_errors[steps - 1].push((fitted[next + steps - 1] - centre).abs());
            }
        });
        let fallback_noise = if clip.is_finite() {
            clip / CLIP_SIGMAS
        } else {
            0.0
        };
        Model {
            smoothing,
            final_state,
            cleaned,
            holt_winters_weight,
            absolute_errors,
            fallback_noise,
        }
    }

    /// Interval half-width per step: the `level` quantile of the absolute k-step errors, so
    /// spikes in the history widen the tails without inflating the core. Steps with too few
    /// errors extrapolate the last reliable one by √k; widths never shrink with the horizon.
    fn half_widths(&self, level: IntervalLevel, horizon: usize) -> Vec<f64> {
        let mut reliable: Option<(usize, f64)> = None;
        let mut widest: f64 = 0.0;
        self.absolute_errors[..horizon]
            .iter()
            .enumerate()
            .map(|(index, errors)| {
                let steps = index + 1;
                let width = if errors.len() >= MIN_ERRORS_PER_STEP {
                    let width = series::quantile(errors, level.fraction());
                    reliable = Some((steps, width));
                    width
                } else {
                    let (base_steps, base) =
                        reliable.unwrap_or((1, level.normal_multiplier() * self.fallback_noise));
                    base * (steps as f64 / base_steps as f64).sqrt()
                };
                widest = widest.max(width);
                widest
            })
            .collect()
    }

    fn forecast(&self, horizon: usize, levels: &[IntervalLevel]) -> Vec<Step> {
        let next = self.cleaned.len();
        let half_widths: Vec<Vec<f64>> = levels
            .iter()
            .map(|level| self.half_widths(*level, horizon))
            .collect();
        (1..=horizon)
            .map(|steps| {
                let centre = blend(
                    &self.cleaned,
                    next,
                    steps,
                    &self.final_state,
                    self.smoothing,
                    self.holt_winters_weight,
                );
                let bounds = half_widths
                    .iter()
                    .map(|widths| (centre - widths[steps - 1], centre + widths[steps - 1]))
                    .collect();
                Step { centre, bounds }
            })
            .collect()
    }
}

/// Weighted mean of the Holt–Winters and seasonal-naive forecasts for day `next + steps - 1`.
fn blend(
    cleaned: &[f64],
    next: usize,
    steps: usize,
    state: &State,
    smoothing: Smoothing,
    holt_winters_weight: f64,
) -> f64 {
    let holt_winters = state.forecast(smoothing.phi, next, steps);
    let seasonal_naive = cleaned[next - WEEK + (steps - 1) % WEEK];
    holt_winters_weight * holt_winters + (1.0 - holt_winters_weight) * seasonal_naive
}

struct OriginScores {
    absolute_errors: Vec<f64>,
    seasonal_naive_errors: Vec<f64>,
    scale: Option<f64>,
    actual_total: f64,
    inside: Vec<usize>,
}

/// Rolling-origin backtest; returns the better method and its figures, or `None` when the
/// series is too short to hold out a week.
fn run_backtest(
    values: &[f64],
    fitted: &[f64],
    fit_scale: FitScale,
    horizon: usize,
    levels: &[IntervalLevel],
) -> Option<(ForecastMethod, Backtest)> {
    let n = values.len();
    if n < MIN_POINTS_FOR_BACKTEST {
        return None;
    }
    let test_days = horizon.min(n - MIN_POINTS);
    let origins: Vec<usize> = (0..MAX_BACKTEST_ORIGINS)
        .map_while(|j| {
            (n - test_days)
                .checked_sub(j * WEEK)
                .filter(|end| *end >= MIN_POINTS)
        })
        .collect();
    let candidates = BLEND_WEIGHTS.map(|weight| {
        origins
            .iter()
            .map(|&end| score_origin(values, fitted, fit_scale, end, test_days, weight, levels))
            .collect::<Vec<_>>()
    });
    let total_error =
        |scores: &[OriginScores]| scores.iter().flat_map(|s| &s.absolute_errors).sum::<f64>();
    let (weight, scores) = BLEND_WEIGHTS
        .iter()
        .zip(&candidates)
        .min_by(|a, b| total_error(a.1).total_cmp(&total_error(b.1)))?;
    Some((
        ForecastMethod::from_weight(*weight),
        summarise(scores, origins.len(), test_days, levels),
    ))
}

fn score_origin(
    values: &[f64],
    fitted: &[f64],
    fit_scale: FitScale,
    end: usize,
    test_days: usize,
    holt_winters_weight: f64,
    levels: &[IntervalLevel],
) -> OriginScores {
    let model = Model::fit(&fitted[..end], holt_winters_weight, test_days);
    let steps = model.forecast(test_days, levels);
    let actual = &values[end..end + test_days];
    let naive = seasonal_naive(&values[..end], WEEK, test_days);
    let mut inside = vec![0; levels.len()];
    for (step, value) in steps.iter().zip(actual) {
        for (count, (lower, upper)) in inside.iter_mut().zip(&step.bounds) {
            if fit_scale.inverse(*lower) <= *value && *value <= fit_scale.inverse(*upper) {
                *count += 1;
            }
        }
    }
    OriginScores {
        absolute_errors: steps
            .iter()
            .zip(actual)
            .map(|(step, value)| (fit_scale.inverse(step.centre) - value).abs())
            .collect(),
        seasonal_naive_errors: naive
            .iter()
            .zip(actual)
            .map(|(f, a)| (f - a).abs())
            .collect(),
        scale: seasonal_naive_scale(&values[..end], WEEK).filter(|scale| *scale > 0.0),
        actual_total: actual.iter().map(|a| a.abs()).sum(),
        inside,
    }
}

fn summarise(
    scores: &[OriginScores],
    origins: usize,
    horizon: usize,
    levels: &[IntervalLevel],
) -> Backtest {
    let scaled = |pick: fn(&OriginScores) -> &Vec<f64>| {
        let per_origin: Vec<f64> = scores
            .iter()
            .filter_map(|s| s.scale.map(|scale| series::mean(pick(s)) / scale))
            .collect();
        (!per_origin.is_empty()).then(|| round_to(series::mean(&per_origin), 4))
    };
    let model_error: f64 = scores.iter().flat_map(|s| &s.absolute_errors).sum();
    let naive_error: f64 = scores.iter().flat_map(|s| &s.seasonal_naive_errors).sum();
    let actual_total: f64 = scores.iter().map(|s| s.actual_total).sum();
    let points = (scores.len() * horizon) as f64;
    Backtest {
        origins,
        horizon,
        mase: scaled(|s| &s.absolute_errors),
        seasonal_naive_mase: scaled(|s| &s.seasonal_naive_errors),
        relative_mae: (naive_error > 0.0).then(|| round_to(model_error / naive_error, 4)),
        wape: (actual_total > 0.0).then(|| round_to(model_error / actual_total, 4)),
        coverage: levels
            .iter()
            .enumerate()
            .map(|(index, level)| IntervalCoverage {
                level: level.percent(),
                observed: round_to(
                    scores.iter().map(|s| s.inside[index]).sum::<usize>() as f64 / points,
                    4,
                ),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, expected_trending_weekly, trending_weekly_counts};
    use chrono::TimeZone;

    fn day_one() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    fn generated_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 6, 0, 0).unwrap()
    }

    fn horizon(days: usize) -> Horizon {
        Horizon::new(days).unwrap()
    }

    fn coverage_of(forecast: &SeriesForecast, level: f64, actual: &[f64]) -> f64 {
        let inside = forecast
            .points
            .iter()
            .zip(actual)
            .filter(|(point, value)| {
                let interval = point.intervals.iter().find(|i| i.level == level).unwrap();
                interval.lower <= **value && **value <= interval.upper
            })
            .count();
        inside as f64 / actual.len() as f64
    }

    #[test]
    fn planted_trend_with_weekly_season_is_forecast_within_its_intervals_and_beats_seasonal_naive()
    {
        let (history_days, h) = (140, 28);
        let mut worst_coverage: f64 = 1.0;
        for seed in 0..5 {
            let all = trending_weekly_counts(seed, history_days + h, 100.0, 1.0);
            let (history, future) = all.split_at(history_days);
            let forecast =
                forecast_counts(day_one(), history, horizon(h), &IntervalLevel::defaults())
                    .unwrap();
            let coverage = coverage_of(&forecast, 95.0, future);
            worst_coverage = worst_coverage.min(coverage);
            let backtest = forecast.backtest.as_ref().unwrap();
            let relative = backtest.relative_mae.unwrap();
            assert!(
                relative < 1.0,
                "seed {seed}: relative MAE {relative} does not beat naive"
            );
            assert!(backtest.mase.unwrap() < backtest.seasonal_naive_mase.unwrap());
            assert!(
                backtest.coverage[1].observed >= 0.8,
                "seed {seed}: {backtest:?}"
            );
            let last = &forecast.points[h - 1];
            let truth = expected_trending_weekly(history_days + h - 1, 100.0, 1.0);
            assert!(
                (last.value - truth).abs() / truth < 0.15,
                "{} vs {truth}",
                last.value
            );
        }
        assert!(
            worst_coverage >= 0.85,
            "95% interval covered only {worst_coverage}"
        );
    }

    #[test]
    fn steady_weekly_counts_with_occasional_spikes_beat_seasonal_naive_in_the_backtest() {
        let mut coverage_80 = Vec::new();
        let mut coverage_95 = Vec::new();
        for seed in 20..25 {
            let mut rng = synthetic::rng(seed);
            let mut counts: Vec<f64> = (0..112)
                .map(|t| synthetic::poisson(&mut rng, 60.0 * synthetic::WEEKLY_PATTERN[t % 7]))
                .collect();
            for day in [30, 61, 95] {
                counts[day] *= 5.0;
            }
            let forecast =
                forecast_counts(day_one(), &counts, horizon(14), &IntervalLevel::defaults())
                    .unwrap();
            let backtest = forecast.backtest.unwrap();
            assert!(
                backtest.relative_mae.unwrap() < 0.9,
                "seed {seed}: {backtest:?}"
            );
            assert!(
                forecast.points.iter().all(|p| p.value < 100.0),
                "seed {seed}"
            );
            coverage_80.push(backtest.coverage[0].observed);
            coverage_95.push(backtest.coverage[1].observed);
        }
        // Spikes widen the tails, not the core: both levels stay close to nominal on average.
        let (mean_80, mean_95) = (series::mean(&coverage_80), series::mean(&coverage_95));
        assert!(
            (0.7..=0.9).contains(&mean_80),
            "80% interval covered {mean_80}"
        );
        assert!(
            (0.9..=0.99).contains(&mean_95),
            "95% interval covered {mean_95}"
        );
    }

    #[test]
    fn confidence_is_earned_from_the_backtest_figures() {
        let counts = trending_weekly_counts(11, 120, 200.0, 0.5);
        let content = volume_forecast_insight(
            "page_view",
            day_one(),
            &counts,
            horizon(14),
            &IntervalLevel::defaults(),
            generated_at(),
        )
        .unwrap();
        let InsightDetails::VolumeForecast(details) = &content.details else {
            panic!("expected forecast details, got {:?}", content.details);
        };
        let backtest = details.forecast.backtest.as_ref().unwrap();
        assert_eq!(content.confidence, confidence_from_backtest(Some(backtest)));
        assert!(content.confidence.value() > 0.6, "{content:?}");
        assert_eq!(details.forecast.points.len(), 14);
        assert_eq!(details.history.len(), HISTORY_SHOWN_DAYS);

        let poor = Backtest {
            relative_mae: Some(2.0),
            wape: Some(0.6),
            ..backtest.clone()
        };
        assert!(confidence_from_backtest(Some(&poor)) < content.confidence);
        let miscalibrated = Backtest {
            coverage: vec![IntervalCoverage {
                level: 95.0,
                observed: 0.6,
            }],
            ..backtest.clone()
        };
        assert!(confidence_from_backtest(Some(&miscalibrated)).value() < 0.35);
    }

    #[test]
    fn a_single_spike_does_not_leak_into_the_forecast() {
        let mut rng = synthetic::rng(3);
        let mut counts: Vec<f64> = (0..84)
            .map(|t| synthetic::poisson(&mut rng, 100.0 * synthetic::WEEKLY_PATTERN[t % 7]))
            .collect();
        counts[80] = 2_000.0;
        let forecast =
            forecast_counts(day_one(), &counts, horizon(7), &IntervalLevel::defaults()).unwrap();
        // Day 80 was the spike; day 87 = forecast index 3 is the same weekday.
        let same_weekday = &forecast.points[87 - 84];
        assert!(
            same_weekday.value < 150.0,
            "spike leaked: {}",
            same_weekday.value
        );
        assert!(
            forecast
                .points
                .iter()
                .all(|p| p.value > 50.0 && p.value < 150.0)
        );
    }

    #[test]
    fn intervals_are_nested_and_widen_with_the_horizon() {
        let counts = trending_weekly_counts(5, 70, 50.0, 0.0);
        let levels = [
            IntervalLevel::new(80.0).unwrap(),
            IntervalLevel::new(95.0).unwrap(),
        ];
        let forecast = forecast_counts(day_one(), &counts, horizon(28), &levels).unwrap();
        for point in &forecast.points {
            let (eighty, ninety_five) = (&point.intervals[0], &point.intervals[1]);
            assert!(ninety_five.lower <= eighty.lower && eighty.lower <= point.value);
            assert!(point.value <= eighty.upper && eighty.upper <= ninety_five.upper);
            assert!(ninety_five.lower >= 0.0);
        }
        let width = |p: &ForecastPoint| p.intervals[1].upper - p.intervals[1].lower;
        let first_week: f64 = forecast.points[..7].iter().map(width).sum();
        let last_week: f64 = forecast.points[21..].iter().map(width).sum();
        assert!(last_week >= first_week);
        assert_eq!(forecast.points[0].date, date_at(day_one(), 70));
    }

    #[test]
    fn supplied_series_keeps_its_dates_and_may_go_negative() {
        let points: Vec<DatedValue> = (0..42)
            .map(|t| DatedValue {
                date: date_at(day_one(), t),
                value: -20.0 + 10.0 * synthetic::WEEKLY_PATTERN[t % 7],
            })
            .collect();
        let forecast = forecast_series(&points, horizon(10), &IntervalLevel::defaults()).unwrap();
        assert_eq!(forecast.fit_scale, FitScale::Identity);
        assert_eq!(forecast.points.len(), 10);
        assert_eq!(forecast.points[0].date, date_at(day_one(), 42));
        assert!((forecast.points[0].value - points[35].value).abs() < 0.5);
        assert!(forecast.points.iter().all(|p| p.value < 0.0));
    }

    #[test]
    fn bad_input_gives_errors_never_panics() {
        let levels = IntervalLevel::defaults();
        let mut counts = vec![10.0; 30];
        counts[4] = f64::NAN;
        assert_eq!(
            forecast_counts(day_one(), &counts, horizon(7), &levels),
            Err(EngineError::NonFinite { index: 4 })
        );
        counts[4] = -1.0;
        assert_eq!(
            forecast_counts(day_one(), &counts, horizon(7), &levels),
            Err(EngineError::NegativeCount {
                index: 4,
                value: -1.0
            })
        );
        assert_eq!(
            forecast_counts(day_one(), &[5.0; 10], horizon(7), &levels),
            Err(EngineError::TooShort {
                needed: 14,
                got: 10
            })
        );
        assert_eq!(
            forecast_series(&[], horizon(7), &levels).unwrap_err(),
            EngineError::TooShort { needed: 1, got: 0 }
        );
        assert!(Horizon::new(0).is_err() && Horizon::new(400).is_err());
        assert!(IntervalLevel::new(100.0).is_err() && IntervalLevel::new(f64::NAN).is_err());
        let flat = forecast_counts(day_one(), &[0.0; 14], horizon(3), &levels).unwrap();
        assert!(flat.points.iter().all(|p| p.value == 0.0));
    }

    #[test]
    fn under_a_week_of_counts_says_not_enough_data() {
        let content = volume_forecast_insight(
            "signup",
            day_one(),
            &[3.0, 4.0, 5.0, 2.0, 6.0],
            horizon(7),
            &IntervalLevel::defaults(),
            generated_at(),
        )
        .unwrap();
        assert!(content.confidence.value() <= 0.2);
        assert!(content.description.starts_with("Not enough data"));
        assert!(matches!(content.details, InsightDetails::NotEnoughData(_)));
    }

    #[test]
    fn two_weeks_forecast_without_backtest_keeps_confidence_low() {
        let counts = trending_weekly_counts(8, 16, 40.0, 0.0);
        let content = volume_forecast_insight(
            "signup",
            day_one(),
            &counts,
            horizon(7),
            &IntervalLevel::defaults(),
            generated_at(),
        )
        .unwrap();
        assert!(content.confidence.value() <= 0.2);
        assert!(content.description.contains("too short to check"));
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["details"]["kind"], "volume_forecast");
        assert_eq!(
            json["details"]["forecast"]["points"][0]["intervals"][0]["level"],
            80.0
        );
    }
}
