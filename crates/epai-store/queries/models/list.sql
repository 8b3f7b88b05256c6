SELECT id, name, description, version, status, metadata, created_at, updated_at
FROM models
ORDER BY name
