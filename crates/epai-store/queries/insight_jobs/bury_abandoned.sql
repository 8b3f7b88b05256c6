-- Running jobs past their visibility timeout with no attempt left are dead: claim no longer
-- takes them, so without this they would stay "running" forever.
UPDATE insight_jobs
SET state = 'dead',
    finished_at = $1,
    locked_until = NULL,
    errors = errors || jsonb_build_array(jsonb_build_object(
               'attempt', attempt, 'at', $1::timestamptz, 'worker', attempted_by,
               'error', 'the worker did not finish before its visibility timeout'))
WHERE state = 'running' AND locked_until <= $1 AND attempt >= max_attempts
