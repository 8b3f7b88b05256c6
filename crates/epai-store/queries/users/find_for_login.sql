-- The account behind a login email, with its partner when it has one.
SELECT u.id, u.encrypted_password, p.id AS partner_id
FROM auth.users u
LEFT JOIN partners p ON p.user_id = u.id
WHERE lower(u.email) = lower($1)
ORDER BY u.created_at
LIMIT 1
