-- Recompute, at $1, the models $2 for every partner with events whose last completed run of
-- that model finished at or before $3 (or never ran), unless a run is already waiting or running.
INSERT INTO insight_jobs (partner_id, model, scheduled_at, created_at)
SELECT p.id, m.model, $1, $1
FROM partners p
CROSS JOIN unnest($2::text[]) AS m(model)
WHERE EXISTS (SELECT 1 FROM ingestion_events e WHERE e.partner_id = p.id)
  AND NOT EXISTS (
    SELECT 1 FROM insight_jobs j
    WHERE j.partner_id = p.id AND j.model = m.model
      AND (j.state IN ('available', 'retryable', 'running')
           OR (j.state = 'completed' AND j.finished_at > $3))
  )
-- The same order as the ingest statement's, so concurrent inserts of new jobs never deadlock.
ORDER BY p.id, m.model
ON CONFLICT (partner_id, model) WHERE state IN ('available', 'retryable') DO NOTHING
