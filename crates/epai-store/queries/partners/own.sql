SELECT id, user_id, name, email, created_at, updated_at
FROM partners
