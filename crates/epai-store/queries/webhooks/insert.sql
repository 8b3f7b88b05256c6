-- A webhook $1 for the current user's partner, unless it already has $7 of them. The secret $6
-- arrives sealed by the server (key $8).
INSERT INTO webhooks (id, partner_id, url, description, event_types, enabled, secret_ciphertext,
                      secret_key_id, created_at, updated_at)
SELECT $1, p.id, $2, $3, $4, $5, $6, $8, $9, $9
FROM partners p
WHERE p.user_id = (SELECT auth.uid())
  AND (SELECT count(*) FROM webhooks w WHERE w.partner_id = p.id) < $7
RETURNING id, url, description, event_types, enabled, previous_secret_expires_at,
          secret_rotated_at, failing_since, last_success_at, disabled_reason, disabled_at,
          created_at, updated_at
