-- The next job due at $2, or a running one whose worker let its visibility timeout pass (it
-- crashed or hung), becomes worker $1's until $3. SKIP LOCKED: concurrent workers each take a
-- different job instead of waiting for one another. A reclaimed job records why it ran again.
WITH next AS (
  SELECT id
  FROM insight_jobs
  WHERE (state IN ('available', 'retryable') AND scheduled_at <= $2)
     OR (state = 'running' AND locked_until <= $2 AND attempt < max_attempts)
  ORDER BY scheduled_at, id
  LIMIT 1
  FOR UPDATE SKIP LOCKED
)
UPDATE insight_jobs j
SET state = 'running',
    attempt = j.attempt + 1,
    attempted_at = $2,
    attempted_by = $1,
    locked_until = $3,
    errors = CASE WHEN j.state = 'running'
                  THEN j.errors || jsonb_build_array(jsonb_build_object(
                         'attempt', j.attempt, 'at', $2::timestamptz, 'worker', j.attempted_by,
                         'error', 'the worker did not finish before its visibility timeout'))
                  ELSE j.errors END
FROM next
WHERE j.id = next.id
RETURNING j.id, j.partner_id, j.model, j.attempt, j.max_attempts, j.locked_until
