-- Daily activity of each entity (the user_id, userId or entity_id in event data) of partner $1
-- in [$2, $3): events per UTC day with any, for the $4 most recently active entities, most
-- recent first, each entity's days oldest first.
WITH activity AS (
  SELECT coalesce(data->>'user_id', data->>'userId', data->>'entity_id') AS entity_id,
         (occurred_at AT TIME ZONE 'UTC')::date AS day
  FROM ingestion_events
  WHERE partner_id = $1 AND occurred_at >= $2 AND occurred_at < $3
),
per_day AS (
  SELECT entity_id, day, count(*) AS events
  FROM activity
  WHERE entity_id IS NOT NULL
  GROUP BY entity_id, day
),
recent AS (
  SELECT entity_id, max(day) AS last_day
  FROM per_day
  GROUP BY entity_id
  ORDER BY last_day DESC, entity_id
  LIMIT $4
)
SELECT p.entity_id, p.day, p.events
FROM per_day p
JOIN recent r USING (entity_id)
ORDER BY r.last_day DESC, p.entity_id, p.day
