//! EPAI's insight models: turn a partner's series and features into predictions and insight
//! content (forecasts with intervals, anomalies, scores).
//!
//! Must stay pure: no SQL, no HTTP, no clock or randomness it is not given, so every model is
//! unit-testable on synthetic data with known answers. The worker feeds it and stores its output.

pub mod anomaly;
pub mod attendance;
pub mod content;
pub mod error;
pub mod forecast;
pub mod lead;
pub mod logistic;
pub mod risk;
pub mod series;

#[cfg(test)]
mod synthetic;

pub use content::{Confidence, InsightContent, InsightDetails, NotEnoughData};
pub use error::EngineError;
