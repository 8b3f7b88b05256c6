-- Ingestion support: idempotency records, key-change notifications, read indexes.

-- A replayed request with the same Idempotency-Key gets the original answer instead of storing
-- its events twice. Only the service role touches this table.
CREATE TABLE IF NOT EXISTS idempotency_keys (
  partner_id UUID NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
  idempotency_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  response_status INTEGER,
  response_body JSONB,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  PRIMARY KEY (partner_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON idempotency_keys (created_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
GRANT ALL ON idempotency_keys TO service_role;

-- Servers cache verified keys; any change to a key (rotation, expiry edits, deletion) tells
-- every server to forget that partner's cached keys at once.
CREATE OR REPLACE FUNCTION public.notify_api_key_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  AS $$
BEGIN
  PERFORM pg_notify('epai_api_key_changed', coalesce(OLD.partner_id, NEW.partner_id)::text);
  RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION public.notify_partner_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  AS $$
BEGIN
  PERFORM pg_notify('epai_api_key_changed', NEW.id::text);
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys;
CREATE TRIGGER api_keys_notify_change AFTER UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION public.notify_api_key_change();

-- A changed quota is part of what servers cache with a partner's keys.
DROP TRIGGER IF EXISTS partners_notify_rate_limit_change ON partners;
CREATE TRIGGER partners_notify_rate_limit_change
  AFTER UPDATE OF rate_limit_per_minute ON partners
  FOR EACH ROW
  WHEN (OLD.rate_limit_per_minute IS DISTINCT FROM NEW.rate_limit_per_minute)
  EXECUTE FUNCTION public.notify_partner_change();

-- Event listing: newest first per partner, with or without a type filter.
CREATE INDEX IF NOT EXISTS ingestion_events_partner_occurred_idx
  ON ingestion_events (partner_id, occurred_at DESC, id DESC);
