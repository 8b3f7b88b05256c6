-- Supabase compatibility: the `auth` schema, its users table, auth.uid()/auth.role() and the
-- three API roles. On a real Supabase database all of these exist already and are left alone.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Roles are shared by every database of a cluster, so another database's migration may create
-- them at the same moment: each is created in its own block that tolerates losing that race.
DO $$ BEGIN
  CREATE ROLE anon NOLOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

DO $$ BEGIN
  CREATE ROLE authenticated NOLOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

DO $$ BEGIN
  CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- The role EPAI's connection pool acts as. NOINHERIT: on its own it can read nothing, every
-- query must first switch to `authenticated` (tenant requests, checked by RLS) or `service_role`
-- (the named system paths).
DO $$ BEGIN
  CREATE ROLE epai_app LOGIN NOINHERIT NOBYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

GRANT anon, authenticated, service_role TO epai_app;
-- A migration role that is not a superuser must be able to act as the pool's role.
GRANT epai_app TO CURRENT_USER;

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE IF NOT EXISTS auth.users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email TEXT,
  encrypted_password TEXT,
  role TEXT DEFAULT 'authenticated',
  raw_user_meta_data JSONB DEFAULT '{}'::jsonb,
  email_confirmed_at TIMESTAMP WITH TIME ZONE,
  last_sign_in_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

DO $$ BEGIN
  IF to_regclass('auth.users_email_key') IS NULL
     AND to_regclass('auth.users_email_partial_key') IS NULL THEN
    CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));
  END IF;
END $$;

-- PostgREST convention: the verified JWT claims of the current request, set per transaction.
DO $do$ BEGIN
  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS UUID
      LANGUAGE sql STABLE
      AS $fn$
        SELECT nullif(
          coalesce(
            nullif(current_setting('request.jwt.claim.sub', true), ''),
            nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
          ),
          ''
        )::uuid
      $fn$;
  END IF;
  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS TEXT
      LANGUAGE sql STABLE
      AS $fn$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
        )
      $fn$;
  END IF;
END $do$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

-- Only where EPAI owns auth.users (not on Supabase, whose auth service owns it): an account may
-- read its own row, and password hashes are not readable by the API roles at all.
DO $$ BEGIN
  IF pg_has_role((SELECT relowner FROM pg_class WHERE oid = 'auth.users'::regclass), 'MEMBER') THEN
    ALTER TABLE auth.users ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS users_select_own_policy ON auth.users;
    CREATE POLICY users_select_own_policy ON auth.users
      FOR SELECT TO authenticated
      USING (id = (SELECT auth.uid()));
    GRANT SELECT (id, email, created_at, last_sign_in_at) ON auth.users TO authenticated;
    GRANT ALL ON auth.users TO service_role;
  END IF;
END $$;

-- Readiness checks compare the applied migration with the binary's (refinery creates this table
-- before the first migration runs).
GRANT SELECT ON refinery_schema_history TO epai_app;
