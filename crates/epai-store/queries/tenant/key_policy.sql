-- Read by regenerate_api_key_for_partner() in the same transaction.
SELECT set_config('epai.api_key_ttl', $1, true),
       set_config('epai.api_key_grace_period', $2, true)
