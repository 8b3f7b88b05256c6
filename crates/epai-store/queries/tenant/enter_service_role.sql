SELECT set_config('role', 'service_role', true)
