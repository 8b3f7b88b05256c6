-- Who owns a webhook, for reporting cross-tenant attempts (service role only).
SELECT partner_id FROM webhooks WHERE id = $1
