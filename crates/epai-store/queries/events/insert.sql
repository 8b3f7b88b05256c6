-- Many events, of one or several partners, in one statement. created_at defaults to the
-- transaction time (NULL elements).
INSERT INTO ingestion_events
  (id, partner_id, event_type, data, source, version, metadata, occurred_at, created_at)
SELECT t.id, t.partner_id, t.event_type, t.data, t.source, t.version, t.metadata, t.occurred_at,
       coalesce(t.created_at, now())
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::jsonb[],
            $8::timestamptz[], $9::timestamptz[])
  AS t(id, partner_id, event_type, data, source, version, metadata, occurred_at, created_at)
