-- Custom model $1's current version, inputs and hash, without the bytes (what a server checks
-- against its cache on every prediction).
SELECT m.name, m.description, c.version, c.inputs, c.sha256, octet_length(c.onnx) AS size_bytes,
       c.registered_at
FROM custom_models c
JOIN models m ON m.id = c.model_id
WHERE m.name = $1 AND m.status = 'active'
