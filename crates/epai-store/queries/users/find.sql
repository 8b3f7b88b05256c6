SELECT id, email, coalesce(role, 'authenticated') AS role,
       coalesce(raw_user_meta_data, '{}'::jsonb) AS user_metadata,
       email_confirmed_at, last_sign_in_at, created_at, updated_at
FROM auth.users
WHERE id = $1
