-- Deliveries to webhook $1 (row-level security: the partner's own), newest first, after the
-- cursor ($2, $3), at most $4.
SELECT id, webhook_id, message_id, event_type, state::text AS state, attempt, max_attempts,
       scheduled_at, attempted_at, response_status, latency_ms, last_error, attempts,
       created_at, finished_at
FROM webhook_deliveries
WHERE webhook_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4
