-- The held delivery ($1, worker $2, attempt $3) failed at $4 (status $7 or none, after $8 ms,
-- error $9; attempt record $6): it waits until $5 for another attempt, or is dead when it has
-- used them all. Its webhook's failure streak starts now if it had none; a webhook failing
-- since $10 or earlier is switched off (which cancels its waiting deliveries). Nothing when the
-- worker no longer held the delivery.
WITH failed AS (
  UPDATE webhook_deliveries
  SET state = CASE WHEN attempt >= max_attempts THEN 'dead'
                   ELSE 'retryable' END::webhook_delivery_state,
      scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE $5 END,
      finished_at = CASE WHEN attempt >= max_attempts THEN $4::timestamptz END,
      locked_until = NULL,
      response_status = $7,
      latency_ms = $8,
      last_error = $9,
      attempts = attempts || jsonb_build_array($6::jsonb)
  WHERE id = $1 AND state = 'running' AND attempted_by = $2 AND attempt = $3
  RETURNING webhook_id, state, scheduled_at
),
streak AS (
  SELECT w.id,
         coalesce(w.failing_since, $4) AS failing_since,
         w.enabled AND coalesce(w.failing_since, $4) <= $10 AS switch_off
  FROM webhooks w
  JOIN failed f ON f.webhook_id = w.id
),
health AS (
  UPDATE webhooks w
  SET failing_since = s.failing_since,
      enabled = w.enabled AND NOT s.switch_off,
      disabled_reason = CASE WHEN s.switch_off THEN 'failing' ELSE w.disabled_reason END,
      disabled_at = CASE WHEN s.switch_off THEN $4 ELSE w.disabled_at END
  FROM streak s
  WHERE w.id = s.id
  RETURNING s.switch_off
)
SELECT f.state::text AS state, f.scheduled_at,
       coalesce((SELECT bool_or(switch_off) FROM health), false) AS switched_off
FROM failed f
