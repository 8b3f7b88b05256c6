-- Daily activity of each entity (the user_id, userId or entity_id in event data) of partner $1
-- on the UTC days of occurrence $2 to $3 (both included): events per day with any, for the $4 most
-- recently active entities, most recent first, each entity's days oldest first. Read from the
-- maintained counts (migration 15): a few rows per entity and day, not the events.
WITH per_day AS (
  SELECT entity_id, occurred_day AS day, sum(events)::bigint AS events
  FROM ingestion_entity_daily_counts
  WHERE partner_id = $1
    AND occurred_day >= $2::date AND occurred_day <= $3::date
  GROUP BY entity_id, occurred_day
  HAVING sum(events) > 0
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
