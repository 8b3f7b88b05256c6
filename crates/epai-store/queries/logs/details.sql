-- Request logs with their masked bodies, newest first; RLS limits them to the caller.
SELECT id, created_at, method, endpoint, status, duration, request_body, response_body
FROM logs
WHERE partner_id = (SELECT id FROM partners WHERE user_id = (SELECT auth.uid()))
ORDER BY created_at DESC, id DESC
LIMIT $1 OFFSET $2
