-- PostgREST convention: act as `authenticated` with the verified claims, for this transaction only.
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', $1, true)
