-- One request log with its masked bodies; RLS hides other partners' rows.
SELECT id, created_at, method, endpoint, status, duration, request_body, response_body
FROM logs
WHERE id = $1
  AND partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
