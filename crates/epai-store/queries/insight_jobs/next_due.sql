-- When claim will next find something: the earliest waiting job or running job's lock expiry.
SELECT least(
  (SELECT min(scheduled_at) FROM insight_jobs WHERE state IN ('available', 'retryable')),
  (SELECT min(locked_until) FROM insight_jobs
   WHERE state = 'running' AND attempt < max_attempts)
)
