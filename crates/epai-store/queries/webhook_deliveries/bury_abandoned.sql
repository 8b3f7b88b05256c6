-- Running deliveries past their visibility timeout with no attempt left are dead: claim no
-- longer takes them, so without this they would stay "running" forever.
UPDATE webhook_deliveries
SET state = 'dead',
    finished_at = $1,
    locked_until = NULL,
    last_error = 'the worker did not finish before its visibility timeout',
    attempts = attempts || jsonb_build_array(jsonb_build_object(
                 'attempt', attempt, 'at', attempted_at,
                 'error', 'the worker did not finish before its visibility timeout'))
WHERE state = 'running' AND locked_until <= $1 AND attempt >= max_attempts
RETURNING id, partner_id, webhook_id, message_id, event_type, attempt
