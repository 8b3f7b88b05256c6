-- Partner $1's events per type and UTC day, for the $3 days from day $2, with a zero for every
-- day a type had no events, oldest day first. Only types seen in the range appear. Reads the
-- (partner_id, event_type, occurred_at) index.
WITH counts AS (
  SELECT event_type, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS events
  FROM ingestion_events
  WHERE partner_id = $1
    AND occurred_at >= ($2::date::timestamp AT TIME ZONE 'UTC')
    AND occurred_at < (($2::date + $3::int)::timestamp AT TIME ZONE 'UTC')
  GROUP BY 1, 2
),
types AS (SELECT DISTINCT event_type FROM counts),
days AS (SELECT $2::date + offset_days AS day FROM generate_series(0, $3::int - 1) AS offset_days)
SELECT t.event_type, d.day, coalesce(c.events, 0) AS events
FROM types t
CROSS JOIN days d
LEFT JOIN counts c ON c.event_type = t.event_type AND c.day = d.day
ORDER BY t.event_type, d.day
