-- Before a failed job ($1, held by $2 at attempt $3) goes back to waiting, a job queued for the
-- same partner and model while it ran is dropped: the retry recomputes the same thing, and only
-- one job per (partner, model) may wait.
DELETE FROM insight_jobs waiting
USING insight_jobs failed
WHERE failed.id = $1 AND failed.state = 'running' AND failed.attempted_by = $2
  AND failed.attempt = $3 AND failed.attempt < failed.max_attempts
  AND waiting.partner_id = failed.partner_id AND waiting.model = failed.model
  AND waiting.state IN ('available', 'retryable')
