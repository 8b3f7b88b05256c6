-- The held job ($1, worker $2, attempt $3) failed at $4 with error $6: it waits until $5 for
-- another attempt, or is dead when it has used them all.
UPDATE insight_jobs
SET state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'retryable' END::insight_job_state,
    scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE $5 END,
    finished_at = CASE WHEN attempt >= max_attempts THEN $4::timestamptz END,
    locked_until = NULL,
    errors = errors || jsonb_build_array($6::jsonb)
WHERE id = $1 AND state = 'running' AND attempted_by = $2 AND attempt = $3
RETURNING state::text, scheduled_at
