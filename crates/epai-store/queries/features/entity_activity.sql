-- Recency and frequency of each entity (the user_id, userId or entity_id in event data) of
-- partner $1 in [$2, $3): first and last event, events, distinct active days; the $4 most
-- recently active entities.
SELECT entity_id,
       min(occurred_at) AS first_seen,
       max(occurred_at) AS last_seen,
       count(*) AS events,
       count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) AS active_days
FROM (
  SELECT coalesce(data->>'user_id', data->>'userId', data->>'entity_id') AS entity_id, occurred_at
  FROM ingestion_events
  WHERE partner_id = $1 AND occurred_at >= $2 AND occurred_at < $3
) e
WHERE entity_id IS NOT NULL
GROUP BY entity_id
ORDER BY last_seen DESC, entity_id
LIMIT $4
