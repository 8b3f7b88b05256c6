INSERT INTO auth.epai_refresh_tokens (session_id, token_hash, parent_id, expires_at)
VALUES ($1, $2, $3, $4)
