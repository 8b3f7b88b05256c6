-- When claim will next find something: the earliest waiting delivery it may take, or running
-- delivery's lock expiry.
SELECT least(
  (SELECT min(d.scheduled_at)
   FROM webhook_deliveries d
   JOIN webhooks w ON w.id = d.webhook_id
   WHERE d.state IN ('available', 'retryable')
     AND (w.enabled OR d.event_type = 'webhook.test')),
  (SELECT min(locked_until) FROM webhook_deliveries
   WHERE state = 'running' AND attempt < max_attempts)
)
