UPDATE auth.epai_sessions SET refreshed_at = now() WHERE id = $1
