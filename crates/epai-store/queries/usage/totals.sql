-- All-time totals of the current partner (the original /get-usage-stats). The event total is
-- the sum of the daily counts (migration 13), not a count of every event row.
WITH partner AS (
  SELECT id FROM partners WHERE user_id = (SELECT auth.uid())
)
SELECT
  (SELECT coalesce(sum(events), 0)::bigint FROM ingestion_event_daily_counts
   WHERE partner_id = (SELECT id FROM partner))
    AS total_ingestion_events,
  (SELECT count(*) FROM insights WHERE partner_id = (SELECT id FROM partner))
    AS total_insights_generated,
  (SELECT max(created_at) FROM ingestion_events WHERE partner_id = (SELECT id FROM partner))
    AS latest_event_timestamp
