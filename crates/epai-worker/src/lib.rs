//! EPAI's job loop: claims insight jobs from the PostgreSQL queue in the store, runs the engine's
//! models on the partner's data, and writes the resulting insights back through the store.
//!
//! Must not parse requests or know about HTTP; it sees partners only through store handles.
//!
//! - [`InsightModel`] is what a model provides: its name, the features it reads, and a pure
//!   `compute`; [`Models`] is the set a worker runs.
//! - [`Worker::run_one`] processes at most one job at a given time, so tests drain the queue
//!   step by step; [`Worker::run`] is the production loop around it.
//! - [`VolumeForecast`] and [`AnomalyDetection`] run the engine's series models per event type;
//!   [`EntityRisk`], [`AttendanceForecast`] and [`LeadScoring`] its per-partner models.
//! - [`Scheduler`] queues recomputation for partners whose insights have gone stale and keeps
//!   the queue tidy.

mod engine_models;
mod models;
mod scheduler;
mod worker;

pub use engine_models::{
    AnomalyDetection, AttendanceForecast, EntityRisk, LeadScoring, VolumeForecast,
};
pub use models::{InsightModel, ModelError, Models};
pub use scheduler::{Scheduler, SchedulerOptions, SchedulerTick};
pub use worker::{Outcome, Worker, WorkerOptions, wake_on_new_jobs};
