-- Only the worker still holding the job (same worker, same attempt, still running) completes
-- it: after a reclaim the earlier worker's late answer changes nothing.
UPDATE insight_jobs
SET state = 'completed', finished_at = $4, locked_until = NULL
WHERE id = $1 AND state = 'running' AND attempted_by = $2 AND attempt = $3
RETURNING id
