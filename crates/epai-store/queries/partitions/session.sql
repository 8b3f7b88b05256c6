-- Moving rows out of the DEFAULT partition may take longer than a request's statement timeout;
-- waits for locks are bounded inside the function (lock_timeout).
SELECT set_config('statement_timeout', '0', true)
