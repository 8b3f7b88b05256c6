//! The insight job queue: a PostgreSQL table whose state machine is in the schema
//! (`migrations/V8__insight_jobs.sql`), claimed with `FOR UPDATE SKIP LOCKED` so any number of
//! workers in any number of processes share it, each job going to exactly one of them.
//!
//! Every decision takes the time as a parameter (`now`), so tests drive the clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_domain::PartnerId;
use serde::Serialize;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;

/// Sent (by a trigger) whenever a job is added to the queue.
pub const JOBS_CHANNEL: &str = "epai_insight_jobs";

/// A job a worker holds: recompute `model` for `partner_id`. Held until `locked_until`; after
/// that another worker may claim it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    pub partner_id: PartnerId,
    pub model: String,
    /// 1 for the first run.
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker: String,
    pub locked_until: DateTime<Utc>,
}

/// Where a failed job went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedJob {
    /// It runs again from `at`.
    Retry { at: DateTime<Utc> },
    /// It used all its attempts.
    Dead,
    /// The worker no longer held it (its visibility timeout passed and it was claimed again).
    NotHeld,
}

/// One entry of a job's `errors`.
#[derive(Serialize)]
struct JobError<'a> {
    attempt: i32,
    at: DateTime<Utc>,
    worker: &'a str,
    error: &'a str,
}

/// How long a job waits after its `attempt`-th failure: attempt⁴ + 10 seconds (11 s, 26 s,
/// 91 s, 266 s, 635 s, …), at most an hour.
pub fn retry_backoff(attempt: i32) -> Duration {
    let attempt = u64::from(attempt.max(1).unsigned_abs());
    Duration::from_secs(attempt.saturating_pow(4).saturating_add(10).min(3600))
}

/// `duration` after `now`, saturating at the end of representable time.
pub fn after(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `duration` before `now`, saturating at the beginning of representable time.
fn before(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl ServiceRole<'_> {
    /// Recompute `model` for `partner` from `run_after`. When a job for them is already waiting,
    /// nothing is added: the waiting one is at most moved earlier (the debounce).
    #[tracing::instrument(skip_all, fields(partner.id = %partner, model))]
    pub async fn enqueue(
        &self,
        partner: PartnerId,
        model: &str,
        run_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.tx
            .execute(
                named_query!("insight_jobs/enqueue"),
                &[&partner.as_uuid(), &model, &run_after, &now],
            )
            .await?;
        Ok(())
    }

    /// Takes the next job due at `now` (or one abandoned by a worker whose visibility timeout
    /// passed) for `worker`, holding it for `visibility`.
    #[tracing::instrument(skip_all, fields(worker))]
    pub async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        visibility: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let row = self
            .tx
            .query_opt(
                named_query!("insight_jobs/claim"),
                &[&worker, &now, &after(now, visibility)],
            )
            .await?;
        Ok(row.map(|row| ClaimedJob {
            id: row.get("id"),
            partner_id: PartnerId::new(row.get("partner_id")),
            model: row.get("model"),
            attempt: row.get("attempt"),
            max_attempts: row.get("max_attempts"),
            worker: worker.to_owned(),
            locked_until: row.get("locked_until"),
        }))
    }

    /// Marks `job` completed; `false` when its worker no longer held it.
    pub async fn complete(&self, job: &ClaimedJob, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .query_opt(
                named_query!("insight_jobs/complete"),
                &[&job.id, &job.worker, &job.attempt, &now],
            )
            .await?
            .is_some())
    }

    /// Records `error` on `job` and schedules a retry after [`retry_backoff`], or buries the
    /// job when it has no attempt left.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<FailedJob, StoreError> {
        let entry = serde_json::to_value(JobError {
            attempt: job.attempt,
            at: now,
            worker: &job.worker,
            error,
        })
        .map_err(|e| StoreError::Other(e.to_string()))?;
        self.tx
            .execute(
                named_query!("insight_jobs/drop_pending_duplicate"),
                &[&job.id, &job.worker, &job.attempt],
            )
            .await?;
        let retry_at = after(now, retry_backoff(job.attempt));
        let row = self
            .tx
            .query_opt(
                named_query!("insight_jobs/fail"),
                &[&job.id, &job.worker, &job.attempt, &now, &retry_at, &entry],
            )
            .await?;
        Ok(match row {
            None => FailedJob::NotHeld,
            Some(row) if row.get::<_, &str>(0) == "dead" => FailedJob::Dead,
            Some(row) => FailedJob::Retry { at: row.get(1) },
        })
    }

    /// When `claim` will next find a job: the earliest scheduled job or lock expiry.
    pub async fn next_job_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .tx
            .query_one(named_query!("insight_jobs/next_due"), &[])
            .await?
            .get(0))
    }

    /// Queues a run of each of `models` at `now` for every partner with events whose last
    /// completed run of it is older than `stale_after` (or who never had one). Returns the
    /// number of jobs added.
    pub async fn enqueue_stale(
        &self,
        models: &[String],
        stale_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let fresh_since = before(now, stale_after);
        Ok(self
            .tx
            .execute(
                named_query!("insight_jobs/enqueue_stale"),
                &[&now, &models, &fresh_since],
            )
            .await?)
    }

    /// Buries running jobs whose last attempt outlived its visibility timeout; returns how many.
    pub async fn bury_abandoned_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .tx
            .execute(named_query!("insight_jobs/bury_abandoned"), &[&now])
            .await?)
    }

    /// Deletes completed and dead jobs that finished more than `retention` before `now`;
    /// returns how many.
    pub async fn prune_finished_jobs(
        &self,
        retention: Duration,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(self
            .tx
            .execute(
                named_query!("insight_jobs/prune_finished"),
                &[&before(now, retention)],
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_each_attempt_and_is_capped() {
        let waits: Vec<u64> = (1..=8).map(|a| retry_backoff(a).as_secs()).collect();
        assert_eq!(&waits[..5], &[11, 26, 91, 266, 635]);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(retry_backoff(100).as_secs(), 3600);
    }

    #[test]
    fn absurd_durations_saturate_instead_of_overflowing() {
        let now = Utc::now();
        assert_eq!(after(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(before(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + chrono::Duration::seconds(1)
        );
    }
}
