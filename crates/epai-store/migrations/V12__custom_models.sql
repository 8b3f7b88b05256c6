-- Custom ONNX models, registered by an operator (`epai model register`) and run by `predict`.
--
-- Scoped like the catalogue they join (DESIGN.md §4: operators register them): each has its
-- row in `models`, so every partner sees it in `GET /v1/models`, and its bytes here, so every
-- replica runs the same model without a shared file system. Partners may read a model to run
-- it; only the service role (the CLI) writes.
CREATE TABLE IF NOT EXISTS custom_models (
  model_id UUID PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
  -- Counts registrations under this name: 1, 2, ... (also `models.version`).
  version INTEGER NOT NULL,
  -- Names of the model's input features, in the order of its input tensor's last axis.
  inputs TEXT[] NOT NULL,
  onnx BYTEA NOT NULL,
  -- Lowercase hex SHA-256 of `onnx`: servers cache compiled models under (name, sha256).
  sha256 TEXT NOT NULL,
  registered_at TIMESTAMP WITH TIME ZONE NOT NULL,
  CONSTRAINT custom_models_version_check CHECK (version > 0),
  CONSTRAINT custom_models_inputs_check CHECK (cardinality(inputs) > 0),
  CONSTRAINT custom_models_onnx_check CHECK (octet_length(onnx) > 0),
  CONSTRAINT custom_models_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

ALTER TABLE custom_models ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS custom_models_select_policy ON custom_models;
CREATE POLICY custom_models_select_policy ON custom_models
  FOR SELECT TO authenticated
  USING (true);
GRANT SELECT ON custom_models TO authenticated;
GRANT ALL ON custom_models TO service_role;
