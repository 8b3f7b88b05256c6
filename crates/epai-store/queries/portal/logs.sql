-- Request logs for the portal's log page, newest first: optionally only one status class
-- (2 for 2xx, 4 for 4xx, ...) and endpoints containing a text; RLS limits them to the caller.
SELECT id, created_at, method, endpoint, status, duration, request_body, response_body
FROM logs
WHERE partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
  AND ($1::int IS NULL OR status / 100 = $1)
  AND ($2::text IS NULL OR strpos(endpoint, $2) > 0)
ORDER BY created_at DESC, id DESC
LIMIT $3 OFFSET $4
