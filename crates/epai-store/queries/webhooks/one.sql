-- One of the partner's webhooks; no row for another partner's (row-level security).
SELECT id, url, description, event_types, enabled, previous_secret_expires_at, secret_rotated_at,
       failing_since, last_success_at, disabled_reason, disabled_at, created_at, updated_at
FROM webhooks
WHERE id = $1
