-- The next delivery due at $2, or a running one whose worker let its visibility timeout pass,
-- becomes worker $1's until $3. An endpoint with $4 deliveries in flight, or a partner with $5,
-- gets no more until one finishes: a slow or hanging receiver holds only that many workers, and
-- everyone else's deliveries go on. SKIP LOCKED: concurrent workers take different deliveries.
-- Deliveries of a switched-off webhook wait (they are cancelled when it is switched off), except
-- test messages.
WITH in_flight AS (
  SELECT webhook_id, partner_id
  FROM webhook_deliveries
  WHERE state = 'running' AND locked_until > $2
),
busy_webhooks AS (
  SELECT webhook_id FROM in_flight GROUP BY webhook_id HAVING count(*) >= $4
),
busy_partners AS (
  SELECT partner_id FROM in_flight GROUP BY partner_id HAVING count(*) >= $5
),
next AS (
  SELECT d.id
  FROM webhook_deliveries d
  JOIN webhooks w ON w.id = d.webhook_id
  WHERE ((d.state IN ('available', 'retryable') AND d.scheduled_at <= $2)
         OR (d.state = 'running' AND d.locked_until <= $2 AND d.attempt < d.max_attempts))
    AND (w.enabled OR d.event_type = 'webhook.test')
    AND d.webhook_id NOT IN (SELECT webhook_id FROM busy_webhooks)
    AND d.partner_id NOT IN (SELECT partner_id FROM busy_partners)
  ORDER BY d.scheduled_at, d.id
  LIMIT 1
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET state = 'running',
    attempt = d.attempt + 1,
    attempted_at = $2,
    attempted_by = $1,
    locked_until = $3,
    attempts = CASE WHEN d.state = 'running'
                    THEN d.attempts || jsonb_build_array(jsonb_build_object(
                           'attempt', d.attempt, 'at', d.attempted_at,
                           'error', 'the worker did not finish before its visibility timeout'))
                    ELSE d.attempts END
FROM next, webhooks w
WHERE d.id = next.id AND w.id = d.webhook_id
RETURNING d.id, d.partner_id, d.webhook_id, d.message_id, d.event_type, d.body, d.attempt,
          d.max_attempts, d.locked_until, w.url, w.secret_ciphertext, w.secret_key_id,
          w.previous_secret_ciphertext, w.previous_secret_key_id, w.previous_secret_expires_at
