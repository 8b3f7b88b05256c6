-- Insight jobs: a durable queue of "recompute model M for partner P", the catalogue of models the
-- engine provides, and notifications that wake workers and feed live insight streams.

-- The job's state machine lives in the schema:
--   available --claim--> running --complete--> completed
--                          |  \--fail (attempts left)--> retryable --claim--> running
--                          |  \--fail (no attempts left)--> dead
--                          \--locked_until passed (worker died)--> claimed again
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'insight_job_state') THEN
    CREATE TYPE insight_job_state AS ENUM ('available', 'running', 'completed', 'retryable', 'dead');
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS insight_jobs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  partner_id UUID NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
  model TEXT NOT NULL,
  state insight_job_state NOT NULL DEFAULT 'available',
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 5,
  scheduled_at TIMESTAMP WITH TIME ZONE NOT NULL,
  attempted_at TIMESTAMP WITH TIME ZONE,
  attempted_by TEXT,
  -- Visibility timeout: a running job whose worker has not finished by then is claimed again.
  locked_until TIMESTAMP WITH TIME ZONE,
  errors JSONB NOT NULL DEFAULT '[]',
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  finished_at TIMESTAMP WITH TIME ZONE,
  CONSTRAINT insight_jobs_attempts_check
    CHECK (max_attempts > 0 AND attempt >= 0 AND attempt <= max_attempts),
  CONSTRAINT insight_jobs_running_is_owned_check
    CHECK (state <> 'running' OR (attempted_at IS NOT NULL AND attempted_by IS NOT NULL
                                  AND locked_until IS NOT NULL)),
  CONSTRAINT insight_jobs_finished_check
    CHECK ((state IN ('completed', 'dead')) = (finished_at IS NOT NULL)),
  CONSTRAINT insight_jobs_errors_check CHECK (jsonb_typeof(errors) = 'array')
);

-- The debounce: at most one job per (partner, model) waiting to run. A job already running does
-- not count, so events arriving during a run queue exactly one follow-up run that sees them.
CREATE UNIQUE INDEX IF NOT EXISTS insight_jobs_one_pending_key
  ON insight_jobs (partner_id, model)
  WHERE state IN ('available', 'retryable');
-- What claim scans: due jobs in schedule order, and running jobs by lock expiry.
CREATE INDEX IF NOT EXISTS insight_jobs_due_idx
  ON insight_jobs (scheduled_at, id)
  WHERE state IN ('available', 'retryable');
CREATE INDEX IF NOT EXISTS insight_jobs_running_idx
  ON insight_jobs (locked_until)
  WHERE state = 'running';
-- The periodic scheduler's "when did this (partner, model) last finish", and pruning.
CREATE INDEX IF NOT EXISTS insight_jobs_partner_model_finished_idx
  ON insight_jobs (partner_id, model, finished_at);

-- Only the job workers and the ingest writers (service_role) touch the queue.
ALTER TABLE insight_jobs ENABLE ROW LEVEL SECURITY;
GRANT ALL ON insight_jobs TO service_role;

-- A new job wakes idle workers. Per inserted row, not per statement: the ingest writers try to
-- enqueue on every commit and mostly insert nothing (a job is already pending).
CREATE OR REPLACE FUNCTION public.notify_insight_job() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  AS $$
BEGIN
  PERFORM pg_notify('epai_insight_jobs', '');
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS insight_jobs_notify_insert ON insight_jobs;
CREATE TRIGGER insight_jobs_notify_insert AFTER INSERT ON insight_jobs
  FOR EACH ROW EXECUTE FUNCTION public.notify_insight_job();

-- Insights are recomputed, not accumulated: one row per (partner, model, subject) — the subject
-- being what the insight is about, such as an event type — updated in place by each run.
-- Rows from before (no subject) are left as they are.
ALTER TABLE insights
  ADD COLUMN IF NOT EXISTS subject TEXT,
  ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP WITH TIME ZONE;
UPDATE insights SET updated_at = coalesce(created_at, now()) WHERE updated_at IS NULL;
ALTER TABLE insights
  ALTER COLUMN updated_at SET DEFAULT NOW(),
  ALTER COLUMN updated_at SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS insights_partner_model_subject_key
  ON insights (partner_id, model_id, subject)
  WHERE subject IS NOT NULL;
-- Live streams resume from "changed since".
CREATE INDEX IF NOT EXISTS insights_partner_updated_idx ON insights (partner_id, updated_at, id);

-- Every new or changed insight is announced to the servers streaming that partner's insights.
CREATE OR REPLACE FUNCTION public.notify_insight_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  AS $$
BEGIN
  PERFORM pg_notify('epai_insight_changed', NEW.partner_id::text || ':' || NEW.id::text);
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS insights_notify_change ON insights;
CREATE TRIGGER insights_notify_change AFTER INSERT OR UPDATE ON insights
  FOR EACH ROW EXECUTE FUNCTION public.notify_insight_change();

-- The catalogue: what each model reads and what its insights contain. The engine implements
-- these contracts; `GET /v1/models` shows them to partners.
INSERT INTO models (name, description, version, status, metadata) VALUES
(
  'event_volume_forecast',
  'Forecasts the daily count of each event type, with weekly seasonality and prediction intervals.',
  '1.0.0', 'active',
  '{
    "trigger": "events",
    "inputs": {
      "event_type": "the event type to forecast; every type with enough history when absent",
      "horizon": "days ahead: 7, 14 or 28",
      "level": "prediction interval levels in percent, default [80, 95]",
      "series": "optional [{date, value}] to forecast instead of the partner''s own counts"
    },
    "outputs": {
      "points": "[{date, value, intervals: {\"80\": {lower, upper}, \"95\": {lower, upper}}}]",
      "history": "the daily counts the forecast was fitted on",
      "backtest": "rolling-origin MASE against seasonal-naive and interval coverage",
      "confidence": "0..1, derived from the backtest"
    }
  }'::jsonb
),
(
  'anomaly_detection',
  'Finds days whose event count departs from the seasonal baseline of the partner''s own series.',
  '1.0.0', 'active',
  '{
    "trigger": "events",
    "inputs": {
      "event_type": "the event type to examine; every type when absent",
      "days": "how much history to examine"
    },
    "outputs": {
      "anomalies": "[{date, value, expected, severity, direction: \"spike\" | \"drop\"}]",
      "baseline": "the expected daily counts",
      "confidence": "0..1"
    }
  }'::jsonb
),
(
  'entity_risk',
  'Scores each user or entity found in event data by its risk of churning, from recency and frequency.',
  '1.0.0', 'active',
  '{
    "trigger": "events",
    "inputs": {
      "entity": "events carrying user_id, userId or entity_id in their data"
    },
    "outputs": {
      "entities": "[{entity_id, probability, reasons: [text]}]",
      "backtest": "AUC on the partner''s own history",
      "confidence": "0..1, derived from the backtest"
    }
  }'::jsonb
),
(
  'attendance_forecast',
  'Predicts attendance of an event from the partner''s past event_attendance events.',
  '1.0.0', 'active',
  '{
    "trigger": "events",
    "inputs": {
      "venue": "text",
      "eventDate": "date",
      "genre": "text",
      "ticketPrice": "number",
      "marketingBudget": "number",
      "venueCapacity": "integer"
    },
    "outputs": {
      "prediction": "expected attendance",
      "confidence": "0..1",
      "explanation": "the factors behind the prediction"
    }
  }'::jsonb
),
(
  'lead_scoring',
  'Scores how likely a lead is to convert, learned from the partner''s lead, engagement and transaction events.',
  '1.0.0', 'active',
  '{
    "trigger": "events",
    "inputs": {
      "customerEmail": "text",
      "customerName": "text",
      "age": "integer",
      "location": "text",
      "engagementScore": "number",
      "previousPurchases": "integer",
      "websiteVisits": "integer",
      "emailOpens": "integer",
      "socialMediaEngagement": "number"
    },
    "outputs": {
      "prediction": "conversion probability 0..1",
      "confidence": "0..1",
      "explanation": "the factors behind the score"
    }
  }'::jsonb
)
ON CONFLICT (name) DO UPDATE
  SET description = EXCLUDED.description,
      version = EXCLUDED.version,
      status = EXCLUDED.status,
      metadata = EXCLUDED.metadata;
