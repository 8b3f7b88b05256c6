-- Who owns a request log, for reporting cross-tenant attempts (service role only).
SELECT partner_id FROM logs WHERE id = $1
