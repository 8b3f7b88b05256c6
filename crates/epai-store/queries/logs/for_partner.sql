SELECT id, endpoint, method, status, duration, created_at
FROM get_logs_for_partner($1, $2)
