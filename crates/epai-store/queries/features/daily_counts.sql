-- Partner $1's events per type and UTC day of occurrence, for the $3 days from day $2, with a
-- zero for every day a type had no events, oldest day first. Only types seen in the range
-- appear. Read from the maintained counts (migration 14): a few rows per day, not the events.
WITH counted AS (
  SELECT c.event_type, c.occurred_day AS day, sum(c.events)::bigint AS events
  FROM ingestion_event_daily_counts c
  WHERE c.partner_id = $1
    AND c.occurred_day >= $2::date AND c.occurred_day < $2::date + $3::int
  GROUP BY 1, 2
  HAVING sum(c.events) <> 0
),
types AS (
  SELECT DISTINCT event_type FROM counted
),
days AS (
  SELECT $2::date + offset_days AS day
  FROM generate_series(0, $3::int - 1) AS offset_days
)
SELECT t.event_type, d.day, coalesce(c.events, 0)::bigint AS events
FROM types t
CROSS JOIN days d
LEFT JOIN counted c ON c.event_type = t.event_type AND c.day = d.day
ORDER BY t.event_type, d.day
