-- Insight webhooks: the endpoints partners register (tenant rows under row-level security) and
-- the queue of deliveries to them, whose state machine lives in the schema like insight_jobs'.

CREATE TABLE IF NOT EXISTS webhooks (
  id UUID PRIMARY KEY,
  partner_id UUID NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
  url TEXT NOT NULL,
  description TEXT,
  event_types TEXT[] NOT NULL,
  enabled BOOLEAN NOT NULL DEFAULT true,
  -- The signing secret must be usable for HMAC, so it cannot be hashed: it is sealed by the
  -- server (ChaCha20-Poly1305 under the server's webhook key, bound to this row's id) and only
  -- the ciphertext is stored. `*_key_id` names the server key that sealed it.
  secret_ciphertext BYTEA NOT NULL,
  secret_key_id TEXT NOT NULL,
  -- After a rotation the replaced secret keeps signing (beside the new one) until it expires.
  previous_secret_ciphertext BYTEA,
  previous_secret_key_id TEXT,
  previous_secret_expires_at TIMESTAMP WITH TIME ZONE,
  secret_rotated_at TIMESTAMP WITH TIME ZONE,
  -- Health: when the current run of failed attempts began (cleared by a success), and why EPAI
  -- switched the webhook off.
  failing_since TIMESTAMP WITH TIME ZONE,
  last_success_at TIMESTAMP WITH TIME ZONE,
  disabled_reason TEXT,
  disabled_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  CONSTRAINT webhooks_id_partner_key UNIQUE (id, partner_id),
  CONSTRAINT webhooks_url_check CHECK (length(url) BETWEEN 1 AND 2048),
  CONSTRAINT webhooks_description_check
    CHECK (description IS NULL OR length(description) <= 200),
  CONSTRAINT webhooks_event_types_check
    CHECK (cardinality(event_types) > 0
           AND event_types <@ ARRAY['insight.created', 'insight.updated', 'api_key.expiring']),
  CONSTRAINT webhooks_previous_secret_check
    CHECK ((previous_secret_ciphertext IS NULL) = (previous_secret_expires_at IS NULL)),
  CONSTRAINT webhooks_disabled_reason_check CHECK (disabled_reason IS NULL OR NOT enabled)
);
CREATE INDEX IF NOT EXISTS webhooks_partner_created_idx ON webhooks (partner_id, created_at);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS webhooks_select_policy ON webhooks;
CREATE POLICY webhooks_select_policy ON webhooks
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

DROP POLICY IF EXISTS webhooks_insert_policy ON webhooks;
CREATE POLICY webhooks_insert_policy ON webhooks
  FOR INSERT
  WITH CHECK (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

DROP POLICY IF EXISTS webhooks_update_policy ON webhooks;
CREATE POLICY webhooks_update_policy ON webhooks
  FOR UPDATE
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())))
  WITH CHECK (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

DROP POLICY IF EXISTS webhooks_delete_policy ON webhooks;
CREATE POLICY webhooks_delete_policy ON webhooks
  FOR DELETE
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

-- A partner manages its webhooks; the row's identity and health bookkeeping are EPAI's.
GRANT SELECT, DELETE ON webhooks TO authenticated;
GRANT INSERT (id, partner_id, url, description, event_types, enabled, secret_ciphertext,
              secret_key_id, created_at, updated_at)
  ON webhooks TO authenticated;
GRANT UPDATE (url, description, event_types, enabled, secret_ciphertext, secret_key_id,
              previous_secret_ciphertext, previous_secret_key_id, previous_secret_expires_at,
              secret_rotated_at, failing_since, disabled_reason, disabled_at, updated_at)
  ON webhooks TO authenticated;
GRANT ALL ON webhooks TO service_role;

-- The delivery queue: one row per (message, webhook).
--   available --claim--> running --2xx--> succeeded
--                          |  \--failure (attempts left)--> retryable --claim--> running
--                          |  \--failure (no attempts left)--> dead
--                          \--locked_until passed (worker died)--> claimed again
--   available / retryable --webhook disabled--> cancelled
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'webhook_delivery_state') THEN
    CREATE TYPE webhook_delivery_state AS ENUM
      ('available', 'running', 'retryable', 'succeeded', 'dead', 'cancelled');
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  partner_id UUID NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
  webhook_id UUID NOT NULL,
  -- The message: its id (the `webhook-id` header, the same on every retry), type, and the
  -- exact body that is signed and sent.
  message_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  body TEXT NOT NULL,
  state webhook_delivery_state NOT NULL DEFAULT 'available',
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  scheduled_at TIMESTAMP WITH TIME ZONE NOT NULL,
  attempted_at TIMESTAMP WITH TIME ZONE,
  attempted_by TEXT,
  -- Visibility timeout: a running delivery whose worker has not finished by then is claimed again.
  locked_until TIMESTAMP WITH TIME ZONE,
  -- The last attempt's outcome, for listings; every attempt is kept in `attempts`.
  response_status INTEGER,
  latency_ms INTEGER,
  last_error TEXT,
  attempts JSONB NOT NULL DEFAULT '[]',
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  finished_at TIMESTAMP WITH TIME ZONE,
  -- The webhook is the partner's own: a delivery cannot point at another partner's endpoint.
  CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (webhook_id, partner_id)
    REFERENCES webhooks (id, partner_id) ON DELETE CASCADE,
  -- Enqueueing a message twice for one endpoint adds nothing.
  CONSTRAINT webhook_deliveries_message_key UNIQUE (webhook_id, message_id),
  CONSTRAINT webhook_deliveries_attempts_check
    CHECK (max_attempts > 0 AND attempt >= 0 AND attempt <= max_attempts),
  CONSTRAINT webhook_deliveries_running_is_owned_check
    CHECK (state <> 'running' OR (attempted_at IS NOT NULL AND attempted_by IS NOT NULL
                                  AND locked_until IS NOT NULL)),
  CONSTRAINT webhook_deliveries_finished_check
    CHECK ((state IN ('succeeded', 'dead', 'cancelled')) = (finished_at IS NOT NULL)),
  CONSTRAINT webhook_deliveries_attempts_array_check CHECK (jsonb_typeof(attempts) = 'array')
);

-- Row-level security and listings: a partner's deliveries, per webhook, newest first.
CREATE INDEX IF NOT EXISTS webhook_deliveries_partner_created_idx
  ON webhook_deliveries (partner_id, created_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook_created_idx
  ON webhook_deliveries (webhook_id, created_at DESC, id DESC);
-- What claim scans: due deliveries in schedule order, and running ones by lock expiry.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx
  ON webhook_deliveries (scheduled_at, id)
  WHERE state IN ('available', 'retryable');
CREATE INDEX IF NOT EXISTS webhook_deliveries_running_idx
  ON webhook_deliveries (locked_until)
  WHERE state = 'running';
CREATE INDEX IF NOT EXISTS webhook_deliveries_finished_idx
  ON webhook_deliveries (finished_at)
  WHERE state IN ('succeeded', 'dead', 'cancelled');

-- Partners read their deliveries; only the delivery workers (service_role) write the queue.
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS webhook_deliveries_select_policy ON webhook_deliveries;
CREATE POLICY webhook_deliveries_select_policy ON webhook_deliveries
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

GRANT SELECT ON webhook_deliveries TO authenticated;
GRANT ALL ON webhook_deliveries TO service_role;

-- New deliveries wake idle delivery workers (once per statement: one insight change fans out
-- to every subscribed webhook in one insert).
CREATE OR REPLACE FUNCTION public.notify_webhook_delivery() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  AS $$
BEGIN
  PERFORM pg_notify('epai_webhook_deliveries', '');
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS webhook_deliveries_notify_insert ON webhook_deliveries;
CREATE TRIGGER webhook_deliveries_notify_insert AFTER INSERT ON webhook_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION public.notify_webhook_delivery();

-- Switching a webhook off (by its partner, or by EPAI after days of failures) cancels what was
-- still waiting for it. The partner's own transaction cannot write the queue, hence the
-- definer's rights, limited to that one webhook's waiting deliveries.
CREATE OR REPLACE FUNCTION public.cancel_webhook_deliveries() RETURNS trigger
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog
  AS $$
BEGIN
  UPDATE public.webhook_deliveries
  SET state = 'cancelled',
      finished_at = now(),
      last_error = 'the webhook was disabled before this delivery was sent'
  WHERE webhook_id = NEW.id AND state IN ('available', 'retryable');
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS webhooks_cancel_on_disable ON webhooks;
CREATE TRIGGER webhooks_cancel_on_disable AFTER UPDATE OF enabled ON webhooks
  FOR EACH ROW
  WHEN (OLD.enabled AND NOT NEW.enabled)
  EXECUTE FUNCTION public.cancel_webhook_deliveries();

-- `api_key.expiring`: the expiry a partner's webhooks were last told about, so each key's
-- coming expiry is announced once.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expiry_announced_for TIMESTAMP WITH TIME ZONE;
