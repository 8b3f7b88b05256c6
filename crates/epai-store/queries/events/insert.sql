-- Many events, of one or several partners, in one statement. created_at defaults to the
-- transaction time (NULL elements).
--
-- In the same statement (so in the same commit, at no extra round trip) every partner that got
-- events ($13: each once, sorted) gets a job per model in $10, to run at $12 (the debounce),
-- created at $11. The partners come from the caller rather than from RETURNING: collecting and
-- sorting every stored row (times the models) cost more than the jobs themselves. The events'
-- INSERT runs to completion whether or not it is read, and a failure of either undoes both.
-- A partner that already has a job waiting gets nothing more: DO NOTHING takes no row lock on a
-- committed job. Two writers adding the same new job do wait for each other, so jobs are
-- inserted in one global order (partner, model): waits then never form a cycle (no deadlock
-- between writers).
WITH stored AS (
  INSERT INTO ingestion_events
    (id, partner_id, event_type, data, source, version, metadata, occurred_at, created_at)
  SELECT t.id, t.partner_id, t.event_type, t.data, t.source, t.version, t.metadata, t.occurred_at,
         coalesce(t.created_at, now())
  FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
              $7::jsonb[], $8::timestamptz[], $9::timestamptz[])
    AS t(id, partner_id, event_type, data, source, version, metadata, occurred_at, created_at)
)
INSERT INTO insight_jobs (partner_id, model, scheduled_at, created_at)
SELECT p.partner_id, m.model, $12::timestamptz, $11::timestamptz
FROM unnest($13::uuid[]) AS p(partner_id)
CROSS JOIN unnest($10::text[]) AS m(model)
ORDER BY p.partner_id, m.model
ON CONFLICT (partner_id, model) WHERE state IN ('available', 'retryable') DO NOTHING
