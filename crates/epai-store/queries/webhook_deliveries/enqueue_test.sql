-- A test message $3 (body $4) for webhook $2 of partner $1, due at $5, tried once, whether or
-- not the webhook is on.
INSERT INTO webhook_deliveries (partner_id, webhook_id, message_id, event_type, body,
                                max_attempts, scheduled_at, created_at)
SELECT w.partner_id, w.id, $3, 'webhook.test', $4, 1, $5, $5
FROM webhooks w
WHERE w.id = $2 AND w.partner_id = $1
RETURNING id, webhook_id, message_id, event_type, state::text AS state, attempt, max_attempts,
          scheduled_at, attempted_at, response_status, latency_ms, last_error, attempts,
          created_at, finished_at
