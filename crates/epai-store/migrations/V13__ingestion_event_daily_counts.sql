-- Per-partner, per-UTC-day, per-event-type event counts, so that `get_partner_usage_summary`
-- reads a few rows per day instead of counting every event of a partner (a 1M-event partner
-- took over 100 ms per summary). Days are days of `created_at`, the ingestion time, as the
-- summary has always counted them.
--
-- Kept exact by statement-level triggers with transition tables on `ingestion_events`: one
-- aggregate upsert per INSERT, UPDATE or DELETE statement, however many rows it wrote, so a
-- group commit of many events pays once. Concurrent writers would queue on the row of
-- (partner, today, type) until each other's commit, which would serialise group commits: each
-- backend adds into its own `slot` (its process id modulo 16) instead, and a day's count is the
-- sum over slots. A slot may go negative (a delete subtracts in the deleting backend's slot);
-- only the sum means anything.
--
-- Statements on a partition directly (rather than through `ingestion_events`) do not fire these
-- triggers: maintenance moves rows between partitions that way on purpose (the count of a day
-- does not change), and `epai_maintain_partitions` below adjusts the counts itself when it
-- drops a month or purges the default partition. TRUNCATE of `ingestion_events` empties them.

CREATE TABLE IF NOT EXISTS ingestion_event_daily_counts (
  partner_id UUID NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
  day DATE NOT NULL,
  event_type TEXT NOT NULL,
  slot SMALLINT NOT NULL,
  events BIGINT NOT NULL,
  PRIMARY KEY (partner_id, day, event_type, slot),
  CONSTRAINT ingestion_event_daily_counts_slot_check CHECK (slot >= 0 AND slot < 16)
);

-- A partner reads its own counts; only the triggers and maintenance (as the owner) write them.
ALTER TABLE ingestion_event_daily_counts ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS ingestion_event_daily_counts_select_policy ON ingestion_event_daily_counts;
CREATE POLICY ingestion_event_daily_counts_select_policy ON ingestion_event_daily_counts
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

GRANT SELECT ON ingestion_event_daily_counts TO authenticated;
GRANT ALL ON ingestion_event_daily_counts TO service_role;

-- One function for the three triggers (PostgreSQL allows transition tables only on triggers for
-- a single event). Rows are upserted in key order, so two statements sharing a slot wait for
-- each other in one order and never deadlock. Seed rows without a partner count for nobody.
-- SECURITY DEFINER: tenants may insert their own events but not write the counts.
CREATE OR REPLACE FUNCTION public.count_ingestion_events() RETURNS trigger
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
DECLARE
  v_slot SMALLINT := (pg_backend_pid() % 16)::smallint;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM public.ingestion_event_daily_counts;
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO public.ingestion_event_daily_counts AS c (partner_id, day, event_type, slot, events)
    SELECT o.partner_id, (o.created_at AT TIME ZONE 'UTC')::date, o.event_type, v_slot, -count(*)
    FROM old_rows o
    WHERE o.partner_id IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (partner_id, day, event_type, slot)
    DO UPDATE SET events = c.events + EXCLUDED.events;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO public.ingestion_event_daily_counts AS c (partner_id, day, event_type, slot, events)
    SELECT n.partner_id, (n.created_at AT TIME ZONE 'UTC')::date, n.event_type, v_slot, count(*)
    FROM new_rows n
    WHERE n.partner_id IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (partner_id, day, event_type, slot)
    DO UPDATE SET events = c.events + EXCLUDED.events;
  END IF;
  RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION public.count_ingestion_events() FROM PUBLIC;

DROP TRIGGER IF EXISTS ingestion_events_count_insert ON ingestion_events;
CREATE TRIGGER ingestion_events_count_insert AFTER INSERT ON ingestion_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION public.count_ingestion_events();
DROP TRIGGER IF EXISTS ingestion_events_count_update ON ingestion_events;
CREATE TRIGGER ingestion_events_count_update AFTER UPDATE ON ingestion_events
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION public.count_ingestion_events();
DROP TRIGGER IF EXISTS ingestion_events_count_delete ON ingestion_events;
CREATE TRIGGER ingestion_events_count_delete AFTER DELETE ON ingestion_events
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION public.count_ingestion_events();
DROP TRIGGER IF EXISTS ingestion_events_count_truncate ON ingestion_events;
CREATE TRIGGER ingestion_events_count_truncate AFTER TRUNCATE ON ingestion_events
  FOR EACH STATEMENT EXECUTE FUNCTION public.count_ingestion_events();

-- The counts of the rows already stored. Writers wait (SHARE lock) until this commits, so no
-- event is counted twice or missed; re-running recomputes the same counts.
LOCK TABLE ingestion_events IN SHARE MODE;
DELETE FROM ingestion_event_daily_counts;
INSERT INTO ingestion_event_daily_counts (partner_id, day, event_type, slot, events)
SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, event_type, 0, count(*)
FROM ingestion_events
WHERE partner_id IS NOT NULL
GROUP BY 1, 2, 3;

-- The seed's function with its signature and result, reading the counts. Days are UTC calendar
-- days; the window is the last p_days days including today, every day present, zero when
-- nothing happened.
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
    SELECT c.day, sum(c.events)::integer AS n
    FROM public.ingestion_event_daily_counts c
    WHERE c.partner_id = (SELECT partner.id FROM partner) AND c.day >= v_first_day
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

-- Maintenance as in migration 11, keeping the counts equal to the rows: dropping a month of
-- events deletes the counts of its days in the same subtransaction (a partition made by
-- epai_attach_month_partition holds whole UTC months, and no other partition holds rows of
-- those days), and purging the default partition subtracts what it deleted.
CREATE OR REPLACE FUNCTION public.epai_maintain_partitions(
  p_table TEXT,
  p_months_ahead INTEGER,
  p_retention INTERVAL,
  p_dry_run BOOLEAN DEFAULT false,
  p_now TIMESTAMP WITH TIME ZONE DEFAULT now()
)
RETURNS TABLE(action TEXT, partition_name TEXT, range_start TIMESTAMP WITH TIME ZONE,
              range_end TIMESTAMP WITH TIME ZONE, row_count BIGINT, detail TEXT)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
-- Never queue for long behind a reader: a waiting ACCESS EXCLUSIVE request would hold up
-- every insert behind it.
SET lock_timeout = '3s'
AS $$
#variable_conflict use_column
DECLARE
  v_parent regclass;
  v_table TEXT;
  v_default regclass;
  v_default_months TIMESTAMP WITH TIME ZONE[] := '{}';
  v_cutoff TIMESTAMP WITH TIME ZONE;
  v_month TIMESTAMP WITH TIME ZONE;
  r RECORD;
BEGIN
  v_parent := CASE p_table
    WHEN 'ingestion_events' THEN 'public.ingestion_events'::regclass
    WHEN 'logs' THEN 'public.logs'::regclass
  END;
  IF v_parent IS NULL THEN
    RAISE EXCEPTION 'only ingestion_events and logs are partitioned, not %', p_table
      USING ERRCODE = '22023';
  END IF;
  IF p_months_ahead IS NULL OR p_months_ahead < 0 OR p_months_ahead > 120 THEN
    RAISE EXCEPTION 'p_months_ahead must be between 0 and 120, got %', p_months_ahead
      USING ERRCODE = '22023';
  END IF;
  IF p_retention IS NOT NULL AND p_retention <= interval '0' THEN
    RAISE EXCEPTION 'p_retention must be positive or NULL, got %', p_retention
      USING ERRCODE = '22023';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('epai.partitions'), hashtext(p_table)) THEN
    action := 'skip';
    detail := 'another process is maintaining this table';
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT relname INTO v_table FROM pg_class WHERE oid = v_parent;
  v_cutoff := p_now - p_retention;
  SELECT m.partition INTO v_default
  FROM public.epai_month_partitions(v_parent) m WHERE m.is_default;

  FOR r IN
    SELECT m.partition, c.relname::text AS name, m.range_start, m.range_end,
           greatest(c.reltuples, 0)::bigint AS estimate
    FROM public.epai_month_partitions(v_parent) m
    JOIN pg_class c ON c.oid = m.partition
    WHERE NOT m.is_default AND m.range_end <= v_cutoff
    ORDER BY m.range_start
  LOOP
    action := 'drop';
    partition_name := r.name;
    range_start := r.range_start;
    range_end := r.range_end;
    row_count := r.estimate;
    detail := NULL;
    IF NOT p_dry_run THEN
      BEGIN
        EXECUTE format('DROP TABLE %s', r.partition);
        -- After the drop: its lock has waited out every insert into the month.
        IF v_parent = 'public.ingestion_events'::regclass THEN
          DELETE FROM public.ingestion_event_daily_counts
          WHERE day >= r.range_start::date AND day < r.range_end::date;
        END IF;
      EXCEPTION
        WHEN lock_not_available THEN action := 'busy';
        WHEN OTHERS THEN action := 'failed'; detail := SQLERRM;
      END;
    END IF;
    RETURN NEXT;
  END LOOP;

  IF v_default IS NOT NULL AND v_cutoff IS NOT NULL THEN
    action := 'purge';
    partition_name := v_table || '_default';
    range_start := NULL;
    range_end := v_cutoff;
    detail := NULL;
    BEGIN
      IF p_dry_run THEN
        EXECUTE format('SELECT count(*) FROM %s WHERE created_at < $1', v_default)
          INTO row_count USING v_cutoff;
      ELSIF v_parent = 'public.ingestion_events'::regclass THEN
        EXECUTE format(
          'WITH gone AS (DELETE FROM %s WHERE created_at < $1 '
          '              RETURNING partner_id, event_type, created_at), '
          'counted AS ('
          '  INSERT INTO public.ingestion_event_daily_counts AS c '
          '    (partner_id, day, event_type, slot, events) '
          '  SELECT partner_id, created_at::date, event_type, $2, -count(*) FROM gone '
          '  WHERE partner_id IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 '
          '  ON CONFLICT (partner_id, day, event_type, slot) '
          '  DO UPDATE SET events = c.events + EXCLUDED.events) '
          'SELECT count(*) FROM gone', v_default)
          INTO row_count USING v_cutoff, (pg_backend_pid() % 16)::smallint;
      ELSE
        EXECUTE format('DELETE FROM %s WHERE created_at < $1', v_default) USING v_cutoff;
        GET DIAGNOSTICS row_count = ROW_COUNT;
      END IF;
    EXCEPTION
      WHEN lock_not_available THEN action := 'busy'; row_count := NULL;
      WHEN OTHERS THEN action := 'failed'; detail := SQLERRM; row_count := NULL;
    END;
    IF row_count IS DISTINCT FROM 0 THEN
      RETURN NEXT;
    END IF;
  END IF;

  IF v_default IS NOT NULL THEN
    EXECUTE format('SELECT coalesce(array_agg(DISTINCT date_trunc(''month'', created_at)), ''{}'') '
                   'FROM %s', v_default)
      INTO v_default_months;
  END IF;
  FOR v_month IN
    WITH wanted AS (
      SELECT generate_series(date_trunc('month', p_now),
                             date_trunc('month', p_now) + make_interval(months => p_months_ahead),
                             interval '1 month') AS month
      UNION
      SELECT unnest(v_default_months)
    )
    SELECT w.month FROM wanted w
    WHERE (v_cutoff IS NULL OR w.month + interval '1 month' > v_cutoff)
      AND NOT EXISTS (
        SELECT 1 FROM public.epai_month_partitions(v_parent) m
        WHERE NOT m.is_default AND m.range_start <= w.month
          AND m.range_end >= w.month + interval '1 month'
      )
    ORDER BY w.month
  LOOP
    action := 'create';
    partition_name := v_table || '_p' || to_char(v_month, 'YYYY_MM');
    range_start := v_month;
    range_end := v_month + interval '1 month';
    detail := NULL;
    BEGIN
      IF p_dry_run THEN
        row_count := 0;
        IF v_default IS NOT NULL THEN
          EXECUTE format('SELECT count(*) FROM %s WHERE created_at >= $1 AND created_at < $2',
                         v_default)
            INTO row_count USING range_start, range_end;
        END IF;
      ELSE
        row_count := public.epai_attach_month_partition(v_parent, v_month);
      END IF;
    EXCEPTION
      WHEN lock_not_available THEN action := 'busy'; row_count := NULL;
      WHEN OTHERS THEN action := 'failed'; detail := SQLERRM; row_count := NULL;
    END;
    RETURN NEXT;
  END LOOP;
END;
$$;

