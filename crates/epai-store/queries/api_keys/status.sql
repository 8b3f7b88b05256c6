-- get_api_key_for_partner() plus the display columns it does not return, through RLS.
SELECT f.api_key_id, f.created_at, f.expires_at, ak.key_prefix, ak.last_used_at
FROM get_api_key_for_partner() f
JOIN api_keys ak ON ak.id = f.api_key_id
