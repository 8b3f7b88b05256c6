-- Per-partner, per-entity, per-UTC-day event counts, for the entity risk model. It used to
-- read the partner's events of the last 120 days on every recomputation, extracting the entity
-- id from each event's data: at 900k events one read took 1.3 s on three processes, and it ran
-- again after every debounce while events kept arriving. The counts give it a few rows per
-- entity and day instead.
--
-- An event's entity is the first of `user_id`, `userId` and `entity_id` in its data (the keys
-- the risk model has always read), as text. Ids longer than 200 characters are not counted:
-- they are no plausible user id, and an index entry must stay small.
--
-- Maintained like `ingestion_event_daily_counts` (migration 13): the same statement-level
-- triggers, one aggregate upsert per statement, a slot per backend so concurrent group commits
-- seldom wait on one counter row, `day` the UTC day of ingestion so that retention drops and
-- purges keep the counts equal to the events left. Events without an entity cost a lookup of
-- three keys in their data and no write.

CREATE OR REPLACE FUNCTION public.epai_event_entity(p_data JSONB) RETURNS TEXT
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE
    WHEN length(coalesce(p_data->>'user_id', p_data->>'userId', p_data->>'entity_id')) <= 200
    THEN coalesce(p_data->>'user_id', p_data->>'userId', p_data->>'entity_id')
  END;

CREATE TABLE IF NOT EXISTS ingestion_entity_daily_counts (
  partner_id UUID NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
  day DATE NOT NULL,
  entity_id TEXT NOT NULL,
  occurred_day DATE NOT NULL,
  slot SMALLINT NOT NULL,
  events BIGINT NOT NULL,
  PRIMARY KEY (partner_id, day, entity_id, occurred_day, slot),
  CONSTRAINT ingestion_entity_daily_counts_slot_check CHECK (slot >= 0 AND slot < 16)
);

-- The risk model reads a partner's counts by occurrence day.
CREATE INDEX IF NOT EXISTS ingestion_entity_daily_counts_partner_occurred_idx
  ON ingestion_entity_daily_counts (partner_id, occurred_day);

-- A partner reads its own counts; only the triggers and maintenance (as the owner) write them.
ALTER TABLE ingestion_entity_daily_counts ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS ingestion_entity_daily_counts_select_policy ON ingestion_entity_daily_counts;
CREATE POLICY ingestion_entity_daily_counts_select_policy ON ingestion_entity_daily_counts
  FOR SELECT
  USING (partner_id IN (SELECT id FROM partners WHERE user_id = (SELECT auth.uid())));

GRANT SELECT ON ingestion_entity_daily_counts TO authenticated;
GRANT ALL ON ingestion_entity_daily_counts TO service_role;

-- As in migration 14, with the entity counts after the daily counts (always in that order,
-- each in key order: two statements never wait for each other in a cycle).
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
    DELETE FROM public.ingestion_entity_daily_counts;
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
    INSERT INTO public.ingestion_entity_daily_counts AS c
      (partner_id, day, entity_id, occurred_day, slot, events)
    SELECT o.partner_id, o.day, o.entity_id, o.occurred_day, v_slot, -count(*)
    FROM (SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date AS day,
                 public.epai_event_entity(data) AS entity_id,
                 (occurred_at AT TIME ZONE 'UTC')::date AS occurred_day
          FROM old_rows) o
    WHERE o.partner_id IS NOT NULL AND o.entity_id IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, entity_id, occurred_day, slot)
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
    INSERT INTO public.ingestion_entity_daily_counts AS c
      (partner_id, day, entity_id, occurred_day, slot, events)
    SELECT n.partner_id, n.day, n.entity_id, n.occurred_day, v_slot, count(*)
    FROM (SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date AS day,
                 public.epai_event_entity(data) AS entity_id,
                 (occurred_at AT TIME ZONE 'UTC')::date AS occurred_day
          FROM new_rows) n
    WHERE n.partner_id IS NOT NULL AND n.entity_id IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, entity_id, occurred_day, slot)
    DO UPDATE SET events = c.events + EXCLUDED.events;
  END IF;
  RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION public.count_ingestion_events() FROM PUBLIC;

-- The counts of the events already stored. Writers wait (SHARE lock) until this commits, so no
-- event is counted twice or missed; re-running recomputes the same counts.
LOCK TABLE ingestion_events IN SHARE MODE;
DELETE FROM ingestion_entity_daily_counts;
INSERT INTO ingestion_entity_daily_counts (partner_id, day, entity_id, occurred_day, slot, events)
SELECT partner_id, day, entity_id, occurred_day, 0, count(*)
FROM (SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date AS day,
             public.epai_event_entity(data) AS entity_id,
             (occurred_at AT TIME ZONE 'UTC')::date AS occurred_day
      FROM ingestion_events) e
WHERE partner_id IS NOT NULL AND entity_id IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- Maintenance as in migration 14; dropping a month and purging the default partition also
-- forget the entity counts of what went.
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
          DELETE FROM public.ingestion_entity_daily_counts
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
          '              RETURNING partner_id, event_type, created_at, occurred_at, '
          '                        public.epai_event_entity(data) AS entity_id), '
          'counted AS ('
          '  INSERT INTO public.ingestion_event_daily_counts AS c '
          '    (partner_id, day, event_type, occurred_day, slot, events) '
          '  SELECT partner_id, created_at::date, event_type, occurred_at::date, $2, -count(*) '
          '  FROM gone WHERE partner_id IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 '
          '  ON CONFLICT (partner_id, day, event_type, occurred_day, slot) '
          '  DO UPDATE SET events = c.events + EXCLUDED.events), '
          'entities AS ('
          '  INSERT INTO public.ingestion_entity_daily_counts AS c '
          '    (partner_id, day, entity_id, occurred_day, slot, events) '
          '  SELECT partner_id, created_at::date, entity_id, occurred_at::date, $2, -count(*) '
          '  FROM gone WHERE partner_id IS NOT NULL AND entity_id IS NOT NULL '
          '  GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 '
          '  ON CONFLICT (partner_id, day, entity_id, occurred_day, slot) '
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
