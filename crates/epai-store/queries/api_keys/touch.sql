-- Coalesced last-use times: one statement for every key used since the last flush.
UPDATE api_keys ak
SET last_used_at = greatest(ak.last_used_at, u.used_at)
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, used_at)
WHERE ak.id = u.id
