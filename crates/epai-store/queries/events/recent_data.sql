-- The partner's latest events of one type with their data, for training per-partner models.
SELECT occurred_at, data
FROM ingestion_events
WHERE partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
  AND event_type = $1
ORDER BY occurred_at DESC
LIMIT $2
