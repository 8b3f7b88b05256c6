-- The presented token with its session, locked so that concurrent refreshes and logouts of one
-- session take turns.
SELECT t.id, t.session_id, s.user_id, p.id AS partner_id,
       t.rotated_at IS NOT NULL AS rotated,
       t.expires_at <= now() AS expired,
       s.revoked_at IS NOT NULL AS session_revoked
FROM auth.epai_refresh_tokens t
JOIN auth.epai_sessions s ON s.id = t.session_id
LEFT JOIN partners p ON p.user_id = s.user_id
WHERE t.token_hash = $1
FOR UPDATE OF t, s
