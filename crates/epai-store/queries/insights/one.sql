SELECT i.id, i.model_id, m.name AS model_name, i.content, i.metadata, i.created_at, i.updated_at
FROM insights i
LEFT JOIN models m ON m.id = i.model_id
WHERE i.id = $1
