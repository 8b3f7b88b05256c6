INSERT INTO logs (id, partner_id, endpoint, method, status, duration, request_body, response_body,
                  ip_address, user_agent, created_at)
SELECT *
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[], $7::jsonb[],
            $8::jsonb[], $9::text[], $10::text[], $11::timestamptz[])
