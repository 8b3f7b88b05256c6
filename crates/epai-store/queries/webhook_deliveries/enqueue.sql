-- Message $2 (type $3, body $4) for every webhook of partner $1 that is on and subscribed to
-- $3, due at $5 with $6 attempts. A message already queued for a webhook is not added twice.
INSERT INTO webhook_deliveries (partner_id, webhook_id, message_id, event_type, body,
                                max_attempts, scheduled_at, created_at)
SELECT w.partner_id, w.id, $2, $3, $4, $6, $5, $5
FROM webhooks w
WHERE w.partner_id = $1 AND w.enabled AND $3 = ANY (w.event_types)
ORDER BY w.id
ON CONFLICT (webhook_id, message_id) DO NOTHING
