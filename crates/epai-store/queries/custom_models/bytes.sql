-- The bytes of custom model $1, if its hash is still $2 (it may have been re-registered since
-- the caller looked).
SELECT c.onnx
FROM custom_models c
JOIN models m ON m.id = c.model_id
WHERE m.name = $1 AND c.sha256 = $2
