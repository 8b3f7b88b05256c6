-- Keys expiring after $1 and by $2 whose partner has a webhook that is on and subscribed to
-- api_key.expiring, and whose expiry was not announced yet: marked announced (each expiry is
-- announced once; a rotation sets a new one) and returned.
UPDATE api_keys k
SET expiry_announced_for = k.expires_at
WHERE k.expires_at > $1 AND k.expires_at <= $2
  AND k.expiry_announced_for IS DISTINCT FROM k.expires_at
  AND EXISTS (
    SELECT 1 FROM webhooks w
    WHERE w.partner_id = k.partner_id AND w.enabled AND 'api_key.expiring' = ANY (w.event_types)
  )
RETURNING k.id, k.partner_id, k.key_prefix, k.expires_at
