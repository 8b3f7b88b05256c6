-- Registers ONNX model $1 (description $2, input names $3, bytes $4, SHA-256 $5, catalogue
-- metadata $6) at $7: a new catalogue row at version 1, or the next version of a custom model
-- of that name. No row when $1 names a built-in model, which a custom one may not replace.
WITH catalogued AS (
  INSERT INTO models AS m (name, description, version, status, metadata, created_at, updated_at)
  VALUES ($1, $2, '1', 'active', $6, $7, $7)
  ON CONFLICT (name) DO UPDATE
    SET description = EXCLUDED.description,
        version = (SELECT (c.version + 1)::text FROM custom_models c WHERE c.model_id = m.id),
        status = 'active',
        metadata = EXCLUDED.metadata,
        updated_at = EXCLUDED.updated_at
    WHERE EXISTS (SELECT 1 FROM custom_models c WHERE c.model_id = m.id)
  RETURNING m.id, m.version
)
INSERT INTO custom_models (model_id, version, inputs, onnx, sha256, registered_at)
SELECT id, version::int, $3, $4, $5, $7 FROM catalogued
ON CONFLICT (model_id) DO UPDATE
  SET version = EXCLUDED.version,
      inputs = EXCLUDED.inputs,
      onnx = EXCLUDED.onnx,
      sha256 = EXCLUDED.sha256,
      registered_at = EXCLUDED.registered_at
RETURNING $1::text AS name, $2::text AS description, version, inputs, sha256,
          octet_length(onnx) AS size_bytes, registered_at
