//! EPAI's insight models: turn a partner's series and features into predictions and insight
//! content (forecasts with intervals, anomalies, scores).
//!
//! Must stay pure: no SQL, no HTTP, no clock or randomness it is not given, so every model is
//! unit-testable on synthetic data with known answers. The worker feeds it and stores its output.
//!
//! Each model has a function that returns [`InsightContent`] (title, description, earned
//! confidence, recommendation, model name, the caller's `generated_at`, and the figures in
//! `details`), and lower-level functions the `predict` endpoint calls directly:
//! - [`forecast`]: daily event volume with prediction intervals and a rolling-origin backtest;
//! - [`anomaly`]: spikes, drops and level shifts within one daily series;
//! - [`risk`]: churn probability per entity from recency, frequency and trend;
//! - [`attendance`]: expected attendees for a planned event (the original `/predict` model);
//! - [`lead`]: conversion probability of a lead (the original `/predict` model);
//! - [`event_data`]: those models' inputs read from the `data` of stored events;
//! - [`onnx`]: custom ONNX models registered by an operator, run with tract.
//!
//! Too little data never produces an invented trend: insight functions answer with
//! "not enough data" content and a confidence of at most 0.2, while the lower-level functions
//! return an [`EngineError`]. Invalid input (NaN, negative counts, broken date sequences) is an
//! error, never a panic.

pub mod anomaly;
pub mod attendance;
pub mod content;
pub mod error;
pub mod event_data;
pub mod forecast;
pub mod lead;
pub mod logistic;
pub mod onnx;
pub mod risk;
pub mod series;

#[cfg(test)]
mod synthetic;

pub use content::{Confidence, InsightContent, InsightDetails, NotEnoughData};
pub use error::EngineError;
