-- A job recomputing model $2 for partner $1 at $3, unless one is already waiting (the debounce):
-- then the waiting job is only ever moved earlier, never later, and a retry keeps its backoff.
INSERT INTO insight_jobs (partner_id, model, scheduled_at, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (partner_id, model) WHERE state IN ('available', 'retryable')
DO UPDATE SET scheduled_at = EXCLUDED.scheduled_at
  WHERE insight_jobs.state = 'available' AND insight_jobs.scheduled_at > EXCLUDED.scheduled_at
