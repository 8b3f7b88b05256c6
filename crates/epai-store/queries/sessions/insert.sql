INSERT INTO auth.epai_sessions (user_id, ip_address, user_agent)
VALUES ($1, $2, $3)
RETURNING id
