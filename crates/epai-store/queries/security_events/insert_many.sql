INSERT INTO security_events (event_type, details, ip_address, user_agent, partner_id, user_id,
                             created_at)
SELECT *
FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::text[], $5::uuid[], $6::uuid[],
            $7::timestamptz[])
