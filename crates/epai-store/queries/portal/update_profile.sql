-- The caller's partner name and contact email (a trigger keeps updated_at);
-- partners_update_policy allows only its own row.
UPDATE partners
SET name = $1, email = $2
WHERE user_id = (SELECT auth.uid())
RETURNING id, user_id, name, email, created_at, updated_at, rate_limit_per_minute
