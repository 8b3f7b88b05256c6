UPDATE partners
SET rate_limit_per_minute = $2, updated_at = now()
WHERE id = $1
RETURNING id, user_id, name, email, created_at, updated_at, rate_limit_per_minute
