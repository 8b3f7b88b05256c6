-- The partner's insights changed at or after the last change of insight $1 (itself included:
-- it may have changed again since the client saw it), oldest change first. Nothing when $1 is
-- not one of the partner's insights.
SELECT i.id, i.model_id, m.name AS model_name, i.content, i.metadata, i.created_at, i.updated_at
FROM insights i
LEFT JOIN models m ON m.id = i.model_id
WHERE i.partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
  AND i.updated_at >= (SELECT updated_at FROM insights WHERE id = $1)
ORDER BY i.updated_at, i.id
LIMIT $2
