-- Waits for a concurrent request with the same key to finish, then claims the key or not.
INSERT INTO idempotency_keys (partner_id, idempotency_key, request_hash)
VALUES ($1, $2, $3)
ON CONFLICT (partner_id, idempotency_key) DO NOTHING
RETURNING 1
