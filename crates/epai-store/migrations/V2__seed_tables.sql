-- The seed's seven tables with the seed's names and columns. `IF NOT EXISTS` everywhere: a
-- deployment that already runs the seed schema is upgraded in place and keeps its rows.

CREATE TABLE IF NOT EXISTS partners (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id),
  name TEXT,
  email TEXT,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS api_keys (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  partner_id UUID REFERENCES partners(id),
  key_hash TEXT NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  expires_at TIMESTAMP WITH TIME ZONE,
  last_used_at TIMESTAMP WITH TIME ZONE,
  UNIQUE (partner_id)
);

CREATE TABLE IF NOT EXISTS models (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name TEXT NOT NULL,
  description TEXT,
  version TEXT NOT NULL,
  status TEXT NOT NULL,
  metadata JSONB,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS ingestion_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  partner_id UUID REFERENCES partners(id),
  event_type TEXT NOT NULL,
  data JSONB NOT NULL,
  source TEXT NOT NULL,
  version TEXT NOT NULL,
  metadata JSONB,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS insights (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  partner_id UUID REFERENCES partners(id),
  model_id UUID REFERENCES models(id),
  content JSONB NOT NULL,
  metadata JSONB,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS logs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  partner_id UUID REFERENCES partners(id),
  endpoint TEXT NOT NULL,
  method TEXT NOT NULL,
  status INTEGER NOT NULL,
  duration INTEGER,
  request_body JSONB,
  response_body JSONB,
  ip_address TEXT,
  user_agent TEXT,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS security_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type TEXT NOT NULL,
  details JSONB,
  ip_address TEXT,
  user_agent TEXT,
  partner_id UUID REFERENCES partners(id),
  user_id UUID REFERENCES auth.users(id),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- Additions (the seed's columns stay as they are).

-- One partner per account: every seed function looks the partner up by auth.uid().
CREATE UNIQUE INDEX IF NOT EXISTS partners_user_id_key ON partners (user_id);

-- Keys: a non-secret prefix to show, and the previous key during a rotation grace period.
-- Seed rows keep their bcrypt hash in key_hash and have no prefix.
ALTER TABLE api_keys
  ADD COLUMN IF NOT EXISTS key_prefix TEXT,
  ADD COLUMN IF NOT EXISTS previous_key_hash TEXT,
  ADD COLUMN IF NOT EXISTS previous_key_prefix TEXT,
  ADD COLUMN IF NOT EXISTS previous_key_expires_at TIMESTAMP WITH TIME ZONE;
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX IF NOT EXISTS api_keys_previous_key_hash_idx ON api_keys (previous_key_hash)
  WHERE previous_key_hash IS NOT NULL;

-- When an event happened (models use it); created_at stays the ingestion time. Existing rows
-- happened when they were ingested, as far as anyone knows.
ALTER TABLE ingestion_events ADD COLUMN IF NOT EXISTS occurred_at TIMESTAMP WITH TIME ZONE;
UPDATE ingestion_events SET occurred_at = created_at WHERE occurred_at IS NULL;
ALTER TABLE ingestion_events
  ALTER COLUMN occurred_at SET DEFAULT NOW(),
  ALTER COLUMN occurred_at SET NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS models_name_key ON models (name);

-- Tenant rows must name their tenant. NOT VALID: enforced for every new row without failing
-- the upgrade of a seed database that already holds orphans (bug 3 created such keys).
DO $$
DECLARE
  t TEXT;
BEGIN
  FOREACH t IN ARRAY ARRAY['api_keys', 'ingestion_events', 'insights'] LOOP
    IF NOT EXISTS (
      SELECT 1 FROM pg_constraint
      WHERE conname = t || '_partner_id_present' AND conrelid = to_regclass(t)
    ) THEN
      EXECUTE format(
        'ALTER TABLE %I ADD CONSTRAINT %I CHECK (partner_id IS NOT NULL) NOT VALID',
        t, t || '_partner_id_present'
      );
    END IF;
  END LOOP;
END $$;

-- Indexes on every column a policy or a tenant query filters by (seed bug 7).
CREATE INDEX IF NOT EXISTS ingestion_events_partner_created_idx
  ON ingestion_events (partner_id, created_at);
CREATE INDEX IF NOT EXISTS ingestion_events_partner_type_occurred_idx
  ON ingestion_events (partner_id, event_type, occurred_at);
CREATE INDEX IF NOT EXISTS insights_partner_created_idx ON insights (partner_id, created_at);
CREATE INDEX IF NOT EXISTS insights_model_idx ON insights (model_id);
CREATE INDEX IF NOT EXISTS logs_partner_created_idx ON logs (partner_id, created_at);
CREATE INDEX IF NOT EXISTS security_events_partner_created_idx
  ON security_events (partner_id, created_at);
CREATE INDEX IF NOT EXISTS security_events_user_idx ON security_events (user_id);

-- updated_at follows every update of a partner or a model.
CREATE OR REPLACE FUNCTION public.touch_updated_at() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS partners_touch_updated_at ON partners;
CREATE TRIGGER partners_touch_updated_at BEFORE UPDATE ON partners
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();
DROP TRIGGER IF EXISTS models_touch_updated_at ON models;
CREATE TRIGGER models_touch_updated_at BEFORE UPDATE ON models
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();
