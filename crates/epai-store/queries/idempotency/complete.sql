UPDATE idempotency_keys
SET response_status = $3, response_body = $4
WHERE partner_id = $1 AND idempotency_key = $2
