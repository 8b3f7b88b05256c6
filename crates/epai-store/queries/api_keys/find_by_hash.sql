-- Key verification: one indexed lookup on the current or the previous (grace period) hash.
SELECT ak.id, ak.partner_id, p.user_id, p.rate_limit_per_minute, ak.expires_at,
       ak.key_hash = $1 AS is_current, ak.previous_key_expires_at
FROM api_keys ak
JOIN partners p ON p.id = ak.partner_id
WHERE ak.key_hash = $1 OR ak.previous_key_hash = $1
