SELECT count(*)
FROM insights i
LEFT JOIN models m ON m.id = i.model_id
WHERE i.partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
  AND ($1::text IS NULL OR m.name = $1)
  AND ($2::timestamptz IS NULL OR i.created_at >= $2)
