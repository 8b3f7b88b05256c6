//! The models a worker can run, by the name jobs carry.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use epai_store::{FeatureRequest, NewInsight, PartnerFeatures};

/// Why a model produced no insights; recorded on the job, which is retried.
pub type ModelError = Box<dyn std::error::Error + Send + Sync>;

/// One model: turns a partner's features into insights. `compute` is pure and may be slow (it
/// runs on a blocking thread), and gets the time instead of reading a clock.
pub trait InsightModel: Send + Sync + 'static {
    /// The name in the `models` catalogue and on jobs.
    fn name(&self) -> &'static str;

    /// What to load before `compute`; by default 90 days of daily counts per event type.
    fn features(&self) -> FeatureRequest {
        FeatureRequest::default()
    }

    /// The insights for the partner as of `now`, one per subject; insights about a subject
    /// replace the previous ones about it.
    fn compute(
        &self,
        features: &PartnerFeatures,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError>;
}

/// The models a worker runs. Cloning shares them.
#[derive(Clone, Default)]
pub struct Models {
    by_name: BTreeMap<&'static str, Arc<dyn InsightModel>>,
}

impl Models {
    pub fn new() -> Self {
        Self::default()
    }

    /// These models and `model` (replacing one of the same name).
    #[must_use]
    pub fn with(mut self, model: impl InsightModel) -> Self {
        self.by_name.insert(model.name(), Arc::new(model));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn InsightModel>> {
        self.by_name.get(name).cloned()
    }

    /// Every model's name, for the ingest trigger and the stale-insight scheduler.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().map(|name| (*name).to_owned()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
