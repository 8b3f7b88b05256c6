-- Changes webhook $1 at $7: each of url $2, description $3 (set, even to NULL, when $4),
-- event types $5 and enabled $6 when given. Turning it on again clears EPAI's reason for turning
-- it off and its failure streak.
UPDATE webhooks
SET url = coalesce($2, url),
    description = CASE WHEN $4 THEN $3 ELSE description END,
    event_types = coalesce($5, event_types),
    enabled = coalesce($6, enabled),
    disabled_reason = CASE WHEN $6::boolean IS TRUE THEN NULL ELSE disabled_reason END,
    disabled_at = CASE WHEN $6::boolean IS TRUE THEN NULL
                       WHEN $6::boolean IS FALSE AND enabled THEN $7
                       ELSE disabled_at END,
    failing_since = CASE WHEN $6::boolean IS TRUE AND NOT enabled THEN NULL
                         ELSE failing_since END,
    updated_at = $7
WHERE id = $1
RETURNING id, url, description, event_types, enabled, previous_secret_expires_at,
          secret_rotated_at, failing_since, last_success_at, disabled_reason, disabled_at,
          created_at, updated_at
