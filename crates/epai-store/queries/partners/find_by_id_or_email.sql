SELECT id, user_id, name, email, created_at, updated_at, rate_limit_per_minute
FROM partners
WHERE id = $1 OR lower(email) = lower($2)
ORDER BY created_at
LIMIT 1
