-- The partner's events, newest first, optionally by type and time range, after a cursor.
SELECT id, event_type, data, source, version, metadata, occurred_at, created_at
FROM ingestion_events
WHERE partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
  AND ($1::text IS NULL OR event_type = $1)
  AND ($2::timestamptz IS NULL OR occurred_at >= $2)
  AND ($3::timestamptz IS NULL OR occurred_at < $3)
  AND ($4::timestamptz IS NULL OR (occurred_at, id) < ($4, $5::uuid))
ORDER BY occurred_at DESC, id DESC
LIMIT $6
