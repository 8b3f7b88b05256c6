-- Per-partner request quota for API keys, in requests per minute. NULL means the server's default
-- (EPAI_RATE_LIMIT_PER_KEY); 0 turns the limit off for that partner. Tenants cannot change it:
-- `authenticated` may update only the name and email columns of its partner (V3).

ALTER TABLE partners ADD COLUMN IF NOT EXISTS rate_limit_per_minute INTEGER;

DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_constraint
    WHERE conname = 'partners_rate_limit_per_minute_check' AND conrelid = 'partners'::regclass
  ) THEN
    ALTER TABLE partners ADD CONSTRAINT partners_rate_limit_per_minute_check
      CHECK (rate_limit_per_minute >= 0);
  END IF;
END $$;
