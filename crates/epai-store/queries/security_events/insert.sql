INSERT INTO security_events (event_type, partner_id, user_id, ip_address, user_agent, details)
VALUES ($1, $2, $3, $4, $5, $6)
