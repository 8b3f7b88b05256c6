-- The data of partner $1's latest $3 events of each type in $2 that happened by $4, per type
-- oldest first: what per-partner models (attendance, leads) learn from. Reads the
-- (partner_id, event_type, occurred_at) index backwards, one type at a time.
SELECT t.event_type, e.occurred_at, e.data
FROM unnest($2::text[]) AS t(event_type)
CROSS JOIN LATERAL (
  SELECT occurred_at, data
  FROM ingestion_events
  WHERE partner_id = $1 AND event_type = t.event_type AND occurred_at <= $4
  ORDER BY occurred_at DESC
  LIMIT $3
) e
ORDER BY t.event_type, e.occurred_at
