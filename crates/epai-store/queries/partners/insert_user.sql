INSERT INTO auth.users (email, encrypted_password, email_confirmed_at)
VALUES ($1, $2, now())
RETURNING id
