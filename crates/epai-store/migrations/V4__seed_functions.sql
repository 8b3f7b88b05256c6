-- The seed's four functions with their names and signatures, fixed:
--   bug 2: get_partner_usage_summary failed (ambiguous "date", bigint counts for INTEGER columns);
--   bug 3: regenerate_api_key_for_partner stored a key without partner for a user without one;
--   bug 4: bcrypt hashes made every key check a scan of slow hashes: store hex SHA-256, indexed;
--   bug 5: base64 put "+", "/" and "=" in keys: use base64url without padding;
--   bug 6: SECURITY DEFINER without a pinned search_path could be hijacked.
-- They run as their owner (so RLS does not apply inside) and select by auth.uid() themselves.
-- Errors use SQLSTATE P0002 (no partner) and 22023 (argument out of range).

CREATE OR REPLACE FUNCTION public.get_api_key_for_partner()
RETURNS TABLE(api_key_id UUID, created_at TIMESTAMP WITH TIME ZONE, expires_at TIMESTAMP WITH TIME ZONE)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
  SELECT ak.id, ak.created_at, ak.expires_at
  FROM public.api_keys ak
  JOIN public.partners p ON ak.partner_id = p.id
  WHERE p.user_id = auth.uid();
END;
$$;

-- Settings read per transaction (set_config(..., true)): `epai.api_key_ttl` (default 90 days)
-- and `epai.api_key_grace_period`, how long the replaced key keeps working (default 0).
CREATE OR REPLACE FUNCTION public.regenerate_api_key_for_partner()
RETURNS TABLE(api_key TEXT)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
-- pgcrypto's gen_random_bytes lives in public, or in extensions on Supabase.
SET search_path = pg_catalog, public, extensions, pg_temp
AS $$
DECLARE
  v_partner_id UUID;
  v_api_key TEXT;
  v_api_key_hash TEXT;
  v_ttl INTERVAL := coalesce(nullif(current_setting('epai.api_key_ttl', true), ''), '90 days')::interval;
  v_grace INTERVAL := coalesce(nullif(current_setting('epai.api_key_grace_period', true), ''), '0')::interval;
BEGIN
  SELECT p.id INTO v_partner_id
  FROM public.partners p
  WHERE p.user_id = auth.uid();

  IF v_partner_id IS NULL THEN
    RAISE EXCEPTION 'no partner account belongs to the current user'
      USING ERRCODE = 'P0002',
            HINT = 'Create a partner for this user before asking for an API key.';
  END IF;

  -- 24 random bytes = 32 base64 characters, never padded; base64url swaps "+/" for "-_".
  v_api_key := 'epai_' || translate(encode(gen_random_bytes(24), 'base64'), '+/', '-_');
  v_api_key_hash := encode(sha256(convert_to(v_api_key, 'UTF8')), 'hex');

  INSERT INTO public.api_keys AS ak (partner_id, key_hash, key_prefix, created_at, expires_at)
  VALUES (v_partner_id, v_api_key_hash, left(v_api_key, 11), now(), now() + v_ttl)
  ON CONFLICT (partner_id)
  DO UPDATE SET
    previous_key_hash = CASE WHEN v_grace > interval '0' THEN ak.key_hash END,
    previous_key_prefix = CASE WHEN v_grace > interval '0' THEN ak.key_prefix END,
    previous_key_expires_at = CASE WHEN v_grace > interval '0'
                                   THEN least(now() + v_grace, ak.expires_at) END,
    key_hash = excluded.key_hash,
    key_prefix = excluded.key_prefix,
    created_at = excluded.created_at,
    expires_at = excluded.expires_at,
    last_used_at = NULL;

  -- The plaintext key exists only in this result.
  RETURN QUERY SELECT v_api_key;
END;
$$;

CREATE OR REPLACE FUNCTION public.get_logs_for_partner(
  p_limit INTEGER DEFAULT 100,
  p_offset INTEGER DEFAULT 0
)
RETURNS TABLE(
  id UUID,
  endpoint TEXT,
  method TEXT,
  status INTEGER,
  duration INTEGER,
  created_at TIMESTAMP WITH TIME ZONE
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_limit IS NULL OR p_limit < 0 OR p_limit > 1000 THEN
    RAISE EXCEPTION 'p_limit must be between 0 and 1000, got %', p_limit USING ERRCODE = '22023';
  END IF;
  IF p_offset IS NULL OR p_offset < 0 THEN
    RAISE EXCEPTION 'p_offset must not be negative, got %', p_offset USING ERRCODE = '22023';
  END IF;

  RETURN QUERY
  SELECT l.id, l.endpoint, l.method, l.status, l.duration, l.created_at
  FROM public.logs l
  JOIN public.partners p ON l.partner_id = p.id
  WHERE p.user_id = auth.uid()
  ORDER BY l.created_at DESC, l.id DESC
  LIMIT p_limit
  OFFSET p_offset;
END;
$$;

-- Days are UTC calendar days; the window is the last p_days days including today, every day
-- present, zero when nothing happened.
CREATE OR REPLACE FUNCTION public.get_partner_usage_summary(
  p_days INTEGER DEFAULT 30
)
RETURNS TABLE(
  date DATE,
  event_count INTEGER,
  insight_count INTEGER
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_today DATE := (now() AT TIME ZONE 'UTC')::date;
  v_first_day DATE;
  v_since TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_days IS NULL OR p_days < 1 OR p_days > 366 THEN
    RAISE EXCEPTION 'p_days must be between 1 and 366, got %', p_days USING ERRCODE = '22023';
  END IF;
  v_first_day := v_today - (p_days - 1);
  v_since := v_first_day::timestamp AT TIME ZONE 'UTC';

  RETURN QUERY
  WITH partner AS (
    SELECT p.id FROM public.partners p WHERE p.user_id = auth.uid()
  ),
  days AS (
    SELECT v_first_day + offset_days AS day
    FROM generate_series(0, p_days - 1) AS offset_days
  ),
  event_days AS (
    SELECT (ie.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::integer AS n
    FROM public.ingestion_events ie
    WHERE ie.partner_id = (SELECT partner.id FROM partner) AND ie.created_at >= v_since
    GROUP BY 1
  ),
  insight_days AS (
    SELECT (i.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::integer AS n
    FROM public.insights i
    WHERE i.partner_id = (SELECT partner.id FROM partner) AND i.created_at >= v_since
    GROUP BY 1
  )
  SELECT d.day, coalesce(e.n, 0), coalesce(i.n, 0)
  FROM days d
  LEFT JOIN event_days e ON e.day = d.day
  LEFT JOIN insight_days i ON i.day = d.day
  ORDER BY d.day;
END;
$$;

REVOKE ALL ON FUNCTION public.get_api_key_for_partner() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.regenerate_api_key_for_partner() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.get_logs_for_partner(INTEGER, INTEGER) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.get_partner_usage_summary(INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.get_api_key_for_partner() TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.regenerate_api_key_for_partner() TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.get_logs_for_partner(INTEGER, INTEGER) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.get_partner_usage_summary(INTEGER) TO authenticated, service_role;
