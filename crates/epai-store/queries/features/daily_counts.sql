-- Partner $1's events per type and UTC day, for the $3 days from day $2, with a zero for every
-- day a type had no events, oldest day first. Only types seen in the range appear.
--
-- Every figure is an index-only count over a range of (partner_id, event_type, occurred_at):
-- the types by a skip scan of that index, then one range per type and day. Grouping the rows
-- instead (a date computed per row, a hash aggregate over all of them) costs more at a million
-- events, and the index is the one listing by type needs anyway, so ingest pays for no extra
-- index.
WITH RECURSIVE known_types AS (
  (SELECT event_type FROM ingestion_events WHERE partner_id = $1 ORDER BY event_type LIMIT 1)
  UNION ALL
  SELECT (SELECT e.event_type FROM ingestion_events e
          WHERE e.partner_id = $1 AND e.event_type > k.event_type
          ORDER BY e.event_type LIMIT 1)
  FROM known_types k
  WHERE k.event_type IS NOT NULL
),
types AS (
  -- A probe per type, not a semi-join the planner would answer by reading every event.
  SELECT k.event_type
  FROM known_types k
  CROSS JOIN LATERAL (
    SELECT 1 FROM ingestion_events e
    WHERE e.partner_id = $1 AND e.event_type = k.event_type
      AND e.occurred_at >= ($2::date::timestamp AT TIME ZONE 'UTC')
      AND e.occurred_at < (($2::date + $3::int)::timestamp AT TIME ZONE 'UTC')
    LIMIT 1
  ) seen
  WHERE k.event_type IS NOT NULL
),
days AS (
  SELECT $2::date + offset_days AS day,
         (($2::date + offset_days)::timestamp AT TIME ZONE 'UTC') AS starts,
         (($2::date + offset_days + 1)::timestamp AT TIME ZONE 'UTC') AS ends
  FROM generate_series(0, $3::int - 1) AS offset_days
)
SELECT t.event_type, d.day,
       (SELECT count(*) FROM ingestion_events e
        WHERE e.partner_id = $1 AND e.event_type = t.event_type
          AND e.occurred_at >= d.starts AND e.occurred_at < d.ends) AS events
FROM types t
CROSS JOIN days d
ORDER BY t.event_type, d.day
