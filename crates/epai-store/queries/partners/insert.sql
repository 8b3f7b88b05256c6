INSERT INTO partners (user_id, name, email)
VALUES ($1, $2, $3)
RETURNING id, user_id, name, email, created_at, updated_at, rate_limit_per_minute
