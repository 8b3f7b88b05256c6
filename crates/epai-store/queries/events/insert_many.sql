-- Many events of one partner in one statement.
INSERT INTO ingestion_events (partner_id, event_type, data, source, version, metadata, occurred_at, created_at)
SELECT $1, t.event_type, t.data, t.source, t.version, t.metadata, t.occurred_at, t.created_at
FROM unnest($2::text[], $3::jsonb[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::timestamptz[])
  AS t(event_type, data, source, version, metadata, occurred_at, created_at)
