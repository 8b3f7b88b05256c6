-- Webhook $1 signs with the new sealed secret $2 (key $3) from $5; the one it replaces keeps
-- signing beside it until $4 (no longer when $4 is not after $5).
UPDATE webhooks
SET previous_secret_ciphertext = CASE WHEN $4::timestamptz > $5::timestamptz
                                      THEN secret_ciphertext END,
    previous_secret_key_id = CASE WHEN $4::timestamptz > $5::timestamptz THEN secret_key_id END,
    previous_secret_expires_at = CASE WHEN $4::timestamptz > $5::timestamptz
                                      THEN $4::timestamptz END,
    secret_ciphertext = $2,
    secret_key_id = $3,
    secret_rotated_at = $5,
    updated_at = $5
WHERE id = $1
RETURNING id, url, description, event_types, enabled, previous_secret_expires_at,
          secret_rotated_at, failing_since, last_success_at, disabled_reason, disabled_at,
          created_at, updated_at
