//! Periodic upkeep of the queue: recompute insights that went stale without new events (a
//! forecast's "today" moves even when nothing arrives), bury jobs abandoned on their last
//! attempt, and prune finished jobs. Several schedulers may run at once (one per process): every
//! statement is idempotent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_store::{Store, StoreError};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug)]
pub struct SchedulerOptions {
    /// A model's insights for a partner are recomputed when its last run finished longer ago.
    pub stale_after: Duration,
    /// Finished jobs are kept this long (longer than `stale_after`: the last completed run is
    /// how staleness is known).
    pub retention: Duration,
    /// How often [`Scheduler::run`] ticks.
    pub interval: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(60),
        }
    }
}

/// What one tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerTick {
    pub enqueued: u64,
    pub buried: u64,
    pub pruned: u64,
}

pub struct Scheduler {
    store: Store,
    models: Vec<String>,
    options: SchedulerOptions,
}

impl Scheduler {
    pub fn new(store: Store, models: Vec<String>, options: SchedulerOptions) -> Self {
        Self {
            store,
            models,
            options,
        }
    }

    /// One round of upkeep as of `now`.
    #[tracing::instrument(skip_all)]
    pub async fn run_one(&self, now: DateTime<Utc>) -> Result<SchedulerTick, StoreError> {
        let SchedulerOptions {
            stale_after,
            retention,
            ..
        } = self.options;
        self.store
            .as_service_role(async |s| {
                Ok(SchedulerTick {
                    enqueued: s.enqueue_stale(&self.models, stale_after, now).await?,
                    buried: s.bury_abandoned_jobs(now).await?,
                    pruned: s.prune_finished_jobs(retention, now).await?,
                })
            })
            .await
    }

    /// Ticks every `interval` until `shutdown` turns true (or its sender is dropped).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
            }
            match self.run_one(Utc::now()).await {
                Ok(tick) if tick != SchedulerTick::default() => {
                    tracing::info!(?tick, "insight queue upkeep");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "insight queue upkeep failed"),
            }
        }
    }
}
