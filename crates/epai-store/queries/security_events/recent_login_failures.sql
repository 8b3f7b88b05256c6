-- The account's latest failed logins since $2 (at most $3 of them): how many, and the oldest.
SELECT count(*) AS failures, min(created_at) AS oldest
FROM (
  SELECT created_at
  FROM security_events
  WHERE user_id = $1 AND event_type = 'login_failed' AND created_at > $2
  ORDER BY created_at DESC
  LIMIT $3
) recent
