-- The held delivery ($1, worker $2, attempt $3) was answered with 2xx at $4 (status $5 after
-- $6 ms; attempt record $7). Its webhook is healthy again. Nothing when the worker no longer
-- held it.
WITH done AS (
  UPDATE webhook_deliveries
  SET state = 'succeeded', finished_at = $4, locked_until = NULL, response_status = $5,
      latency_ms = $6, last_error = NULL, attempts = attempts || jsonb_build_array($7::jsonb)
  WHERE id = $1 AND state = 'running' AND attempted_by = $2 AND attempt = $3
  RETURNING webhook_id
),
healthy AS (
  UPDATE webhooks w
  SET failing_since = NULL, last_success_at = $4
  FROM done
  WHERE w.id = done.webhook_id
  RETURNING w.id
)
SELECT EXISTS (SELECT 1 FROM done)
