UPDATE auth.users SET last_sign_in_at = now() WHERE id = $1
