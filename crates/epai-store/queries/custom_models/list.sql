-- Every custom model with its catalogue entry, without the bytes.
SELECT m.name, m.description, c.version, c.inputs, c.sha256, octet_length(c.onnx) AS size_bytes,
       c.registered_at
FROM custom_models c
JOIN models m ON m.id = c.model_id
ORDER BY m.name
