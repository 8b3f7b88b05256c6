-- Portal sessions: one row per login, and the chain of single-use refresh tokens it issued.
-- Named epai_* so they never collide with the auth service's own auth.sessions and
-- auth.refresh_tokens on a Supabase database. Only SHA-256 hashes of refresh tokens are stored.

CREATE TABLE IF NOT EXISTS auth.epai_sessions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  ip_address TEXT,
  user_agent TEXT,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  refreshed_at TIMESTAMP WITH TIME ZONE,
  -- Revoking the session revokes every refresh token of its family at once.
  revoked_at TIMESTAMP WITH TIME ZONE,
  revoked_reason TEXT,
  CONSTRAINT epai_sessions_revocation_check
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);

CREATE INDEX IF NOT EXISTS epai_sessions_user_id_idx ON auth.epai_sessions (user_id);

CREATE TABLE IF NOT EXISTS auth.epai_refresh_tokens (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id UUID NOT NULL REFERENCES auth.epai_sessions(id) ON DELETE CASCADE,
  token_hash TEXT NOT NULL,
  -- The token this one replaced; NULL for the first token of a session.
  parent_id UUID REFERENCES auth.epai_refresh_tokens(id) ON DELETE CASCADE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
  -- Set when the token is exchanged; presenting it again is reuse.
  rotated_at TIMESTAMP WITH TIME ZONE,
  CONSTRAINT epai_refresh_tokens_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT epai_refresh_tokens_expiry_check CHECK (expires_at > created_at)
);

CREATE UNIQUE INDEX IF NOT EXISTS epai_refresh_tokens_token_hash_key
  ON auth.epai_refresh_tokens (token_hash);
CREATE INDEX IF NOT EXISTS epai_refresh_tokens_session_id_idx
  ON auth.epai_refresh_tokens (session_id);
-- A token is exchanged at most once, even by two concurrent refreshes.
CREATE UNIQUE INDEX IF NOT EXISTS epai_refresh_tokens_parent_id_key
  ON auth.epai_refresh_tokens (parent_id) WHERE parent_id IS NOT NULL;

-- Only the server's service role touches sessions; no policy is needed because no API role
-- that is subject to row-level security gets any privilege on these tables.
ALTER TABLE auth.epai_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.epai_refresh_tokens ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON auth.epai_sessions, auth.epai_refresh_tokens FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth.epai_sessions, auth.epai_refresh_tokens TO service_role;
