//! The engine's one error type: every way a caller's input can be unusable.

use chrono::NaiveDate;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("value at position {index} is not a finite number")]
    NonFinite { index: usize },
    #[error("count at position {index} is negative ({value})")]
    NegativeCount { index: usize, value: f64 },
    #[error("series has {got} points; at least {needed} are needed")]
    TooShort { needed: usize, got: usize },
    #[error("dates must be consecutive days: {previous} is followed by {next}")]
    NotDaily {
        previous: NaiveDate,
        next: NaiveDate,
    },
    #[error("horizon must be between 1 and {max} days, got {got}")]
    InvalidHorizon { got: usize, max: usize },
    #[error("interval level must be a percentage strictly between 0 and 100, got {got}")]
    InvalidLevel { got: f64 },
    #[error("{field} must be a finite, non-negative number, got {got}")]
    InvalidFeature { field: &'static str, got: f64 },
    #[error("the model could not be fitted: the features are degenerate")]
    SingularFit,
    #[error("training data needs both outcomes; all {count} examples are {outcome}")]
    SingleClass { count: usize, outcome: bool },
    #[error("not a usable model: {0}")]
    InvalidModel(String),
    #[error("{message}")]
    InvalidInput { message: String },
    #[error("the model failed to run: {0}")]
    Inference(String),
}
