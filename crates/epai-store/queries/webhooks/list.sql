-- The partner's webhooks (row-level security decides whose), oldest first.
SELECT id, url, description, event_types, enabled, previous_secret_expires_at, secret_rotated_at,
       failing_since, last_success_at, disabled_reason, disabled_at, created_at, updated_at
FROM webhooks
ORDER BY created_at, id
