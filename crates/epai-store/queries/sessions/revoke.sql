-- Revokes the session and with it every refresh token of its family.
UPDATE auth.epai_sessions
SET revoked_at = now(), revoked_reason = $3
WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
