-- Idempotent migrations announce every object they skip; only warnings are worth printing.
SET client_min_messages = warning
