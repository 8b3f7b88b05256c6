-- The daily counts of migration 13 also by the UTC day each event occurred on, so that the
-- models' daily series (features/daily_counts) read a few rows per day instead of counting a
-- partner's events in the index: at a million events that count took about a second of every
-- recomputation. Same table, same one upsert per statement: a row is now (partner, day of
-- ingestion, type, day of occurrence, slot). The usage summary sums over occurrence days, so
-- its figures do not change; retention still drops whole ingestion days.

-- The counts are rebuilt from the rows: writers wait (SHARE lock) until this commits.
LOCK TABLE ingestion_events IN SHARE MODE;
ALTER TABLE ingestion_event_daily_counts ADD COLUMN IF NOT EXISTS occurred_day DATE;
DELETE FROM ingestion_event_daily_counts;
ALTER TABLE ingestion_event_daily_counts
  ALTER COLUMN occurred_day SET NOT NULL,
  DROP CONSTRAINT ingestion_event_daily_counts_pkey,
  ADD CONSTRAINT ingestion_event_daily_counts_pkey
    PRIMARY KEY (partner_id, day, event_type, occurred_day, slot);
INSERT INTO ingestion_event_daily_counts (partner_id, day, event_type, occurred_day, slot, events)
SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, event_type,
       (occurred_at AT TIME ZONE 'UTC')::date, 0, count(*)
FROM ingestion_events
WHERE partner_id IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- The models read a partner's counts by occurrence day.
CREATE INDEX IF NOT EXISTS ingestion_event_daily_counts_partner_occurred_idx
  ON ingestion_event_daily_counts (partner_id, occurred_day);

-- As in migration 13, with the day of occurrence in every upsert.
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
    INSERT INTO public.ingestion_event_daily_counts AS c
      (partner_id, day, event_type, occurred_day, slot, events)
    SELECT o.partner_id, (o.created_at AT TIME ZONE 'UTC')::date, o.event_type,
           (o.occurred_at AT TIME ZONE 'UTC')::date, v_slot, -count(*)
    FROM old_rows o
    WHERE o.partner_id IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, event_type, occurred_day, slot)
    DO UPDATE SET events = c.events + EXCLUDED.events;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO public.ingestion_event_daily_counts AS c
      (partner_id, day, event_type, occurred_day, slot, events)
    SELECT n.partner_id, (n.created_at AT TIME ZONE 'UTC')::date, n.event_type,
           (n.occurred_at AT TIME ZONE 'UTC')::date, v_slot, count(*)
    FROM new_rows n
    WHERE n.partner_id IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, event_type, occurred_day, slot)
    DO UPDATE SET events = c.events + EXCLUDED.events;
  END IF;
  RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION public.count_ingestion_events() FROM PUBLIC;

-- Maintenance as in migration 13; purging the default partition subtracts per occurrence day
-- too. (Dropping a month deletes the counts of its ingestion days, whatever they occurred on.)
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
          '              RETURNING partner_id, event_type, created_at, occurred_at), '
          'counted AS ('
          '  INSERT INTO public.ingestion_event_daily_counts AS c '
          '    (partner_id, day, event_type, occurred_day, slot, events) '
          '  SELECT partner_id, created_at::date, event_type, occurred_at::date, $2, -count(*) '
          '  FROM gone WHERE partner_id IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 '
          '  ON CONFLICT (partner_id, day, event_type, occurred_day, slot) '
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

