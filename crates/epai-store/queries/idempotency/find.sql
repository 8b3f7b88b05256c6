SELECT request_hash, response_status, response_body
FROM idempotency_keys
WHERE partner_id = $1 AND idempotency_key = $2
