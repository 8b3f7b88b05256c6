-- Who owns an insight, for reporting cross-tenant attempts (service role only).
SELECT partner_id FROM insights WHERE id = $1
