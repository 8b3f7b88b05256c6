-- Whether partner $1 has a webhook that is on and subscribed to event type $2.
SELECT EXISTS (
  SELECT 1 FROM webhooks WHERE partner_id = $1 AND enabled AND $2 = ANY (event_types)
)
