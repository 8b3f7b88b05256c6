SELECT id, user_id, name, email, created_at, updated_at, rate_limit_per_minute
FROM partners
