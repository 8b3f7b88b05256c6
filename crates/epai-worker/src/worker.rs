//! Claims a job, loads the partner's features, runs the model, and writes its insights and the
//! job's completion in one transaction; a failure is recorded on the job for a later retry.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_store::notify::Notification;
use epai_store::{ClaimedJob, FailedJob, NewInsight, Store, StoreError};
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use crate::models::Models;

#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// How long a claimed job stays the worker's; past that, it is presumed dead and another
    /// worker runs the job again. Longer than the slowest model run.
    pub visibility: Duration,
    /// The longest an idle worker sleeps before looking at the queue again, when no
    /// notification wakes it earlier.
    pub idle_poll: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(300),
            idle_poll: Duration::from_secs(5),
        }
    }
}

/// What one step of a worker did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A job ran and its insights are stored.
    Done,
    /// No job was due.
    Empty,
    /// A job failed; the error is on the job, which is retried later or dead.
    Failed,
}

pub struct Worker {
    store: Store,
    models: Models,
    id: String,
    options: WorkerOptions,
}

impl Worker {
    /// A worker with a unique id (process id and a random suffix), so a job's `attempted_by`
    /// tells which process held it.
    pub fn new(store: Store, models: Models, options: WorkerOptions) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            store,
            models,
            id: format!("worker-{}-{}", std::process::id(), &suffix[..8]),
            options,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the job due at `now`, if any. `Err` only when the queue itself cannot be reached
    /// (a failing job is `Ok(Outcome::Failed)`).
    #[tracing::instrument(skip_all, fields(worker = %self.id))]
    pub async fn run_one(&self, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        let visibility = self.options.visibility;
        let claimed = self
            .store
            .as_service_role(async |s| s.claim(&self.id, now, visibility).await)
            .await?;
        let Some(job) = claimed else {
            return Ok(Outcome::Empty);
        };
        let span = tracing::info_span!("job", job.id = job.id, partner.id = %job.partner_id,
            model = %job.model, attempt = job.attempt);
        self.finish(&job, now).instrument(span).await
    }

    /// Processes a claimed job and records how it ended.
    async fn finish(&self, job: &ClaimedJob, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        let started = std::time::Instant::now();
        let processed = self.process(job, now).await;
        metrics::histogram!("epai_insight_job_duration_seconds", "model" => job.model.clone())
            .record(started.elapsed().as_secs_f64());
        let outcome = if processed.is_ok() { "done" } else { "failed" };
        metrics::counter!("epai_insight_jobs_total", "model" => job.model.clone(), "outcome" => outcome)
            .increment(1);
        match processed {
            Ok(written) => {
                tracing::info!(insights = written, "job done");
                Ok(Outcome::Done)
            }
            Err(error) => {
                let failed = self
                    .store
                    .as_service_role(async |s| s.fail(job, &error, now).await)
                    .await?;
                match failed {
                    FailedJob::Retry { at } => tracing::warn!(%error, retry_at = %at, "job failed"),
                    FailedJob::Dead => tracing::error!(%error, "job failed for the last time"),
                    FailedJob::NotHeld => {
                        tracing::warn!(%error, "job failed after another worker took it over");
                    }
                }
                Ok(Outcome::Failed)
            }
        }
    }

    /// Runs `job`'s model and stores its insights with the job's completion; the number of
    /// insights written, or why not.
    async fn process(&self, job: &ClaimedJob, now: DateTime<Utc>) -> Result<usize, String> {
        let model = self
            .models
            .get(&job.model)
            .ok_or_else(|| format!("no model named {} is installed", job.model))?;
        let request = model.features();
        let features = self
            .store
            .as_service_role(async |s| s.partner_features(job.partner_id, request, now).await)
            .await
            .map_err(|e| format!("loading features: {e}"))?;
        let insights: Vec<NewInsight> =
            tokio::task::spawn_blocking(move || model.compute(&features, now))
                .await
                .map_err(|e| format!("the model panicked: {e}"))?
                .map_err(|e| format!("the model failed: {e}"))?;
        let written = insights.len();
        self.store
            .as_service_role(async |s| {
                for insight in &insights {
                    s.upsert_insight(job.partner_id, &job.model, insight, now)
                        .await?;
                }
                if s.complete(job, now).await? {
                    Ok(())
                } else {
                    // Rolls the insights back: the worker that took the job over writes them.
                    Err(StoreError::Conflict("the job is no longer held".into()))
                }
            })
            .await
            .map_err(|e| format!("storing insights: {e}"))?;
        Ok(written)
    }

    /// Runs jobs until `shutdown` turns true (or its sender is dropped). Sleeps only while the
    /// queue is empty: until the next scheduled job, `idle_poll`, or a wake-up on `wakeups`,
    /// whichever comes first. A job in progress always finishes first.
    pub async fn run(&self, wakeups: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        tracing::info!(worker = %self.id, "insight worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Registered before looking, so a job added meanwhile still wakes this worker.
            let woken = wakeups.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let wait = match self.run_one(Utc::now()).await {
                Ok(Outcome::Done | Outcome::Failed) => {
                    backoff = Duration::from_millis(200);
                    continue;
                }
                Ok(Outcome::Empty) => self.idle_wait().await,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot reach the job queue");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    wait
                }
            };
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(wait) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        tracing::info!(worker = %self.id, "insight worker stopped");
    }

    /// How long to sleep with an empty queue: until the next job is due, at most `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        let poll = self.options.idle_poll;
        match self
            .store
            .as_service_role(async |s| s.next_job_due().await)
            .await
        {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                // Due already but not claimable: another worker holds it (SKIP LOCKED).
                .unwrap_or(Duration::from_millis(50))
                .clamp(Duration::from_millis(10), poll),
            Ok(None) | Err(_) => poll,
        }
    }
}

/// Wakes every idle worker waiting on `wakeups` whenever a job is queued (or the notification
/// connection came back, when jobs may have been missed). Runs until the process ends.
pub async fn wake_on_new_jobs(store: Store, wakeups: Arc<Notify>) {
    let (sink, mut received) = mpsc::channel(64);
    let wake = async move {
        while let Some(notification) = received.recv().await {
            if matches!(
                notification,
                Notification::JobsAvailable | Notification::Resubscribed
            ) {
                wakeups.notify_waiters();
            }
        }
    };
    tokio::join!(store.listen(sink), wake);
}
