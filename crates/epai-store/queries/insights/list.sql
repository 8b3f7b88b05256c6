-- The partner's insights, newest first, by model and age, after a cursor or at an offset.
SELECT i.id, i.model_id, m.name AS model_name, i.content, i.metadata, i.created_at, i.updated_at
FROM insights i
LEFT JOIN models m ON m.id = i.model_id
WHERE i.partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
  AND ($1::text IS NULL OR m.name = $1)
  AND ($2::timestamptz IS NULL OR i.created_at >= $2)
  AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3, $4::uuid))
ORDER BY i.created_at DESC, i.id DESC
LIMIT $5 OFFSET $6
