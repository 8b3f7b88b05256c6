-- Seed bug 1: the seed wrote policies but never enabled row-level security, so none applied.
-- Seed bug 7: `auth.uid()` in a policy ran once per row; `(SELECT auth.uid())` runs once per
-- statement as an init plan. Policies keep the seed's names and are recreated, so re-running
-- this file, or running it over the seed's own policies, gives the same result.

ALTER TABLE partners ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE models ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingestion_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE insights ENABLE ROW LEVEL SECURITY;
ALTER TABLE logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_events ENABLE ROW LEVEL SECURITY;

-- Partners
DROP POLICY IF EXISTS partners_select_policy ON partners;
CREATE POLICY partners_select_policy ON partners
  FOR SELECT
  USING (user_id = (SELECT auth.uid()));

DROP POLICY IF EXISTS partners_update_policy ON partners;
CREATE POLICY partners_update_policy ON partners
  FOR UPDATE
  USING (user_id = (SELECT auth.uid()))
  WITH CHECK (user_id = (SELECT auth.uid()));

-- API keys
DROP POLICY IF EXISTS api_keys_select_policy ON api_keys;
CREATE POLICY api_keys_select_policy ON api_keys
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

DROP POLICY IF EXISTS api_keys_update_policy ON api_keys;
CREATE POLICY api_keys_update_policy ON api_keys
  FOR UPDATE
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())))
  WITH CHECK (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

DROP POLICY IF EXISTS api_keys_insert_policy ON api_keys;
CREATE POLICY api_keys_insert_policy ON api_keys
  FOR INSERT
  WITH CHECK (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

-- Models: the catalogue is shared, readable by every signed-in partner (it had no policy).
DROP POLICY IF EXISTS models_select_policy ON models;
CREATE POLICY models_select_policy ON models
  FOR SELECT TO authenticated
  USING (true);

-- Ingestion events
DROP POLICY IF EXISTS ingestion_events_select_policy ON ingestion_events;
CREATE POLICY ingestion_events_select_policy ON ingestion_events
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

DROP POLICY IF EXISTS ingestion_events_insert_policy ON ingestion_events;
CREATE POLICY ingestion_events_insert_policy ON ingestion_events
  FOR INSERT
  WITH CHECK (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

-- Insights
DROP POLICY IF EXISTS insights_select_policy ON insights;
CREATE POLICY insights_select_policy ON insights
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

-- Logs
DROP POLICY IF EXISTS logs_select_policy ON logs;
CREATE POLICY logs_select_policy ON logs
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

-- Security events: a partner may read its own (it had no policy).
DROP POLICY IF EXISTS security_events_select_policy ON security_events;
CREATE POLICY security_events_select_policy ON security_events
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

-- Privileges. Reads are granted broadly and narrowed by the policies above, as on Supabase; writes
-- only where a policy says who may write.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT SELECT ON partners, api_keys, models, ingestion_events, insights, logs, security_events
  TO anon, authenticated;
GRANT UPDATE (name, email) ON partners TO authenticated;
GRANT INSERT, UPDATE ON api_keys TO authenticated;
GRANT INSERT ON ingestion_events TO authenticated;
GRANT ALL ON partners, api_keys, models, ingestion_events, insights, logs, security_events
  TO service_role;
