//! Monthly partitions of `ingestion_events` and `logs`: the upgrade that converts them keeps
//! every row and everything defined on the tables; maintenance creates, fills and drops months;
//! partitions show nothing when reached directly; reads still use indexes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use epai_store::testing::TestDatabase;
use epai_store::{EventFilter, PartitionAction, PartitionChange, RetentionPolicy, Store};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The migration that partitions the tables. Tests of the conversion compare the catalog
/// just before and just after it, whatever other migrations come before or after.
const PARTITIONING: i32 = 11;

/// Everything the catalog says about `table` that a conversion must keep, by kind, each entry a
/// line of text (names included, so a renamed object counts as lost).
async fn catalog(admin: &Client, table: &str) -> BTreeMap<&'static str, Vec<String>> {
    let queries: [(&'static str, &str); 9] = [
        (
            "columns",
            "SELECT format('%s %s null=%s default=%s', a.attname, format_type(a.atttypid, a.atttypmod),
                           NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        ),
        (
            "indexes",
            "SELECT indexname || ': ' || indexdef FROM pg_indexes
             WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
        ),
        (
            "constraints",
            "SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = $1::text::regclass ORDER BY conname",
        ),
        (
            "policies",
            "SELECT format('%s %s %s %s using=%s check=%s', policyname, permissive, roles, cmd, qual, with_check)
             FROM pg_policies WHERE schemaname = 'public' AND tablename = $1 ORDER BY policyname",
        ),
        (
            "grants",
            "SELECT format('%s %s grantable=%s', acl.grantee::regrole, acl.privilege_type, acl.is_grantable)
             FROM pg_class c, aclexplode(c.relacl) acl
             WHERE c.oid = $1::text::regclass AND acl.grantee <> c.relowner ORDER BY 1",
        ),
        (
            "column grants",
            "SELECT format('%s(%s) %s', acl.grantee::regrole, a.attname, acl.privilege_type)
             FROM pg_attribute a, aclexplode(a.attacl) acl
             WHERE a.attrelid = $1::text::regclass ORDER BY 1",
        ),
        (
            "triggers",
            "SELECT tgname || ': ' || pg_get_triggerdef(oid) FROM pg_trigger
             WHERE tgrelid = $1::text::regclass AND NOT tgisinternal ORDER BY tgname",
        ),
        (
            "security",
            "SELECT format('rls=%s force=%s owner=%s', relrowsecurity, relforcerowsecurity, relowner::regrole)
             FROM pg_class WHERE oid = $1::text::regclass",
        ),
        (
            "comment",
            "SELECT coalesce(obj_description($1::text::regclass, 'pg_class'), '(none)')",
        ),
    ];
    let mut found = BTreeMap::new();
    for (kind, sql) in queries {
        let rows = admin.query(sql, &[&table]).await.unwrap();
        // A partitioned table's index is defined `ON ONLY` the parent, its partitions' indexes
        // attached to it: the same index as far as queries and the definition go.
        found.insert(
            kind,
            rows.iter()
                .map(|r| r.get::<_, String>(0).replace(" ON ONLY ", " ON "))
                .collect(),
        );
    }
    found
}

/// `(id, created_at)` of every row of `table`, in id order.
async fn rows_of(admin: &Client, table: &str) -> Vec<(Uuid, Option<DateTime<Utc>>)> {
    admin
        .query(
            &format!("SELECT id, created_at FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The partition holding each row, by row: `table_pYYYY_MM` or `table_default`.
async fn partition_of_each_row(admin: &Client, table: &str) -> Vec<(String, String)> {
    admin
        .query(
            &format!(
                "SELECT tableoid::regclass::text, '{table}_p' || to_char(created_at AT TIME ZONE 'UTC', 'YYYY_MM')
                 FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn partitions(admin: &Client, table: &str) -> Vec<String> {
    admin
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass ORDER BY 1",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn month_name(table: &str, at: DateTime<Utc>) -> String {
    format!("{table}_p{}", at.format("%Y_%m"))
}

/// What other migrations (and operators) may have added to the tables before the conversion:
/// it must carry all of it without knowing about it.
const ADDITIONS: &str = "
CREATE INDEX test_events_covering_idx
  ON ingestion_events (partner_id, occurred_at, event_type) INCLUDE (source);
ALTER TABLE ingestion_events ADD COLUMN note TEXT DEFAULT 'kept' NOT NULL;
CREATE POLICY ingestion_events_no_demo_policy ON ingestion_events AS RESTRICTIVE FOR SELECT
  TO authenticated USING (event_type <> 'demo-only');
CREATE FUNCTION public.test_logs_inserted() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER logs_inserted AFTER INSERT ON logs
  FOR EACH STATEMENT EXECUTE FUNCTION public.test_logs_inserted();
GRANT SELECT (id, status) ON logs TO anon;
GRANT UPDATE ON logs TO service_role WITH GRANT OPTION;
COMMENT ON TABLE logs IS 'one row per API request';
COMMENT ON COLUMN logs.duration IS 'milliseconds';
";

#[tokio::test]
async fn a_v8_database_with_rows_converts_to_monthly_partitions_keeping_rows_and_catalog() {
    let db = TestDatabase::migrated_to(8).await;
    let admin = db.admin().await;
    admin.batch_execute(ADDITIONS).await.unwrap();
    let acme = insert_partner(&admin, "acme").await;
    let other = insert_partner(&admin, "other").await;
    // Five months of traffic for two partners, one row a day each.
    for partner in [acme.partner.as_uuid(), other.partner.as_uuid()] {
        admin
            .execute(
                "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, occurred_at, created_at)
                 SELECT $1, 'page_view', jsonb_build_object('day', d), 'test', '1',
                        now() - make_interval(days => d), now() - make_interval(days => d)
                 FROM generate_series(0, 150) AS d",
                &[&partner],
            )
            .await
            .unwrap();
        admin
            .execute(
                "INSERT INTO logs (partner_id, endpoint, method, status, duration, created_at)
                 SELECT $1, '/v1/events', 'POST', 202, d, now() - make_interval(days => d)
                 FROM generate_series(0, 150) AS d",
                &[&partner],
            )
            .await
            .unwrap();
    }
    // The seed allowed rows without created_at, and events without partner (seed bug 3's
    // kind of orphan), which the NOT VALID check tolerates for old rows.
    admin
        .batch_execute(
            "INSERT INTO logs (endpoint, method, status, created_at) VALUES ('/old', 'GET', 200, NULL);
             ALTER TABLE ingestion_events DROP CONSTRAINT ingestion_events_partner_id_present;
             INSERT INTO ingestion_events (event_type, data, source, version) VALUES ('orphan', '{}', 's', '1');
             ALTER TABLE ingestion_events ADD CONSTRAINT ingestion_events_partner_id_present
               CHECK (partner_id IS NOT NULL) NOT VALID;",
        )
        .await
        .unwrap();

    // Whatever the migrations before partitioning add (indexes, columns) is carried too.
    db.run_with_cluster_lock(epai_store::migrate_to(db.target(), PARTITIONING - 1))
        .await
        .unwrap();
    let mut before = BTreeMap::new();
    let mut rows_before = BTreeMap::new();
    for table in ["ingestion_events", "logs"] {
        before.insert(table, catalog(&admin, table).await);
        rows_before.insert(table, rows_of(&admin, table).await);
    }
    let upgrade_started = Utc::now();
    let applied = db
        .run_with_cluster_lock(epai_store::migrate_to(db.target(), PARTITIONING))
        .await
        .expect("the upgrade applies");
    assert_eq!(applied, [PARTITIONING]);

    for table in ["ingestion_events", "logs"] {
        let kind: String = admin
            .query_one(
                "SELECT relkind::text FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(kind, "p", "{table} is partitioned");

        let rows = rows_of(&admin, table).await;
        let expected = &rows_before[table];
        println!(
            "{table}: {} rows before, {} after",
            expected.len(),
            rows.len()
        );
        assert_eq!(
            rows.len(),
            expected.len(),
            "{table}: every row is still there"
        );
        for ((id, at), (id_before, at_before)) in rows.iter().zip(expected) {
            assert_eq!(id, id_before, "{table}: the same ids");
            match at_before {
                Some(at_before) => assert_eq!(at, &Some(*at_before), "{table}: created_at kept"),
                None => assert!(
                    at.is_some_and(|at| at >= upgrade_started),
                    "{table}: a row without created_at is kept as of the upgrade"
                ),
            }
        }
        for (partition, month) in partition_of_each_row(&admin, table).await {
            assert_eq!(
                partition, month,
                "{table}: each row lives in its month's partition"
            );
        }

        // Everything defined on the table is still there, under the same names. Only the
        // primary key gains the partition key, which makes created_at NOT NULL.
        let mut expected = before[table].clone();
        let pkey = format!("{table}_pkey");
        for entries in expected.values_mut() {
            for entry in entries.iter_mut() {
                if entry.starts_with(&pkey) {
                    *entry = entry.replace("(id)", "(id, created_at)");
                }
                if entry.starts_with("created_at timestamp with time zone null=t ") {
                    *entry = entry.replace("null=t ", "null=f ");
                }
            }
        }
        assert_eq!(
            catalog(&admin, table).await,
            expected,
            "{table}: catalog kept"
        );
    }
    let orphan_check: String = admin
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conname = 'ingestion_events_partner_id_present' AND conrelid = 'ingestion_events'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(orphan_check.ends_with("NOT VALID"), "{orphan_check}");

    // With every later migration too, the upgraded tables work for tenants as before:
    // isolation, listing, the seed functions.
    db.run_with_cluster_lock(epai_store::migrate(db.target()))
        .await
        .unwrap();
    let store = db.store();
    let (events, logs, usage) = store
        .as_user(acme.user, async |t| {
            let events = t
                .events(&EventFilter {
                    limit: 1000,
                    ..EventFilter::default()
                })
                .await?;
            Ok((events, t.logs(1000, 0).await?, t.usage_summary(30).await?))
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 151, "acme's events, and only acme's");
    assert_eq!(logs.len(), 151, "acme's request logs, and only acme's");
    assert_eq!(usage.iter().map(|d| d.event_count).sum::<i32>(), 30);
    let newest_first: Vec<_> = logs.iter().map(|l| l.created_at).collect();
    let mut sorted = newest_first.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        newest_first, sorted,
        "logs stay newest first across partitions"
    );

    // New rows go where they belong, and the primary key still refuses a duplicate.
    let event = Uuid::now_v7();
    store
        .as_service_role(async |s| {
            s.insert_events(&[epai_store::NewEvent {
                id: event,
                partner_id: acme.partner,
                event_type: "click".into(),
                data: serde_json::json!({}).into(),
                source: "test".into(),
                version: "1".into(),
                metadata: None,
                occurred_at: Utc::now(),
                created_at: None,
            }])
            .await
        })
        .await
        .unwrap();
    let stored_in: String = admin
        .query_one(
            "SELECT tableoid::regclass::text FROM ingestion_events WHERE id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored_in, month_name("ingestion_events", Utc::now()));
    let duplicate = admin
        .execute(
            "INSERT INTO ingestion_events (id, partner_id, event_type, data, source, version, created_at)
             SELECT id, partner_id, event_type, data, source, version, created_at
             FROM ingestion_events WHERE id = $1",
            &[&event],
        )
        .await;
    assert!(duplicate.is_err(), "the primary key holds");
}

#[tokio::test]
async fn a_fresh_database_has_partitions_for_this_month_and_the_next_three_and_a_default() {
    let db = TestDatabase::migrated_to(PARTITIONING).await;
    let admin = db.admin().await;
    let now = Utc::now();
    for table in ["ingestion_events", "logs"] {
        let mut expected: Vec<String> = (0..4)
            .map(|ahead| month_name(table, add_months(now, ahead)))
            .collect();
        expected.push(format!("{table}_default"));
        expected.sort();
        assert_eq!(partitions(&admin, table).await, expected);
    }
    // Routing is PostgreSQL's own: no trigger runs per inserted row (the daily counts of
    // migration 13 are kept by statement-level triggers).
    let triggers: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE NOT t.tgisinternal AND (t.tgtype & 1) = 1
               AND (c.relname LIKE 'ingestion_events%' OR c.relname LIKE 'logs%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 0);
}

fn add_months(at: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    at.checked_add_months(chrono::Months::new(months)).unwrap()
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

fn changes(actions: &[PartitionAction]) -> Vec<(String, PartitionChange, String, Option<i64>)> {
    actions
        .iter()
        .map(|a| {
            (
                a.table.clone(),
                a.change,
                a.partition.clone().unwrap_or_default(),
                a.rows,
            )
        })
        .collect()
}

async fn insert_log_at(admin: &Client, at: DateTime<Utc>) {
    admin
        .execute(
            "INSERT INTO logs (endpoint, method, status, created_at) VALUES ('/', 'GET', 200, $1)",
            &[&at],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn maintenance_creates_months_ahead_moves_default_rows_and_drops_what_expired() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let store: Store = db.store();
    // Rows from months without a partition (a backfill, a clock far off) land in DEFAULT.
    let now = Utc::now();
    let long_ago = add_months(now, 0) - chrono::Duration::days(200);
    for _ in 0..3 {
        insert_log_at(&admin, long_ago).await;
    }
    insert_log_at(&admin, add_months(now, 11)).await;
    let default_rows = async || -> i64 {
        admin
            .query_one("SELECT count(*) FROM logs_default", &[])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(default_rows().await, 4);

    let policy = RetentionPolicy {
        logs: None,
        events: None,
        months_ahead: 4,
    };
    let plan = store.maintain_partitions(&policy, true, now).await.unwrap();
    let expected = vec![
        (
            "ingestion_events".to_owned(),
            PartitionChange::Create,
            month_name("ingestion_events", add_months(now, 4)),
            Some(0),
        ),
        (
            "logs".to_owned(),
            PartitionChange::Create,
            month_name("logs", long_ago),
            Some(3),
        ),
        (
            "logs".to_owned(),
            PartitionChange::Create,
            month_name("logs", add_months(now, 4)),
            Some(0),
        ),
        (
            "logs".to_owned(),
            PartitionChange::Create,
            month_name("logs", add_months(now, 11)),
            Some(1),
        ),
    ];
    assert_eq!(changes(&plan), expected, "the dry run plans");
    assert_eq!(default_rows().await, 4, "a dry run changes nothing");
    assert!(
        !partitions(&admin, "logs")
            .await
            .contains(&month_name("logs", add_months(now, 4)))
    );

    let done = store
        .maintain_partitions(&policy, false, now)
        .await
        .unwrap();
    assert_eq!(
        changes(&done),
        expected,
        "the real run does what was planned"
    );
    assert_eq!(default_rows().await, 0, "rows moved into their months");
    for (partition, month) in partition_of_each_row(&admin, "logs").await {
        assert_eq!(partition, month);
    }
    assert!(
        store
            .maintain_partitions(&policy, false, now)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to do"
    );

    // A year on, with 90 days of logs kept and events kept forever: the old log months go,
    // every event month stays, and the year's months ahead are prepared.
    let later = add_months(now, 12);
    admin.batch_execute("ANALYZE logs").await.unwrap();
    let policy = RetentionPolicy {
        logs: Some(90 * DAY),
        ..policy
    };
    let done = store
        .maintain_partitions(&policy, false, later)
        .await
        .unwrap();
    let cutoff = later - chrono::Duration::days(90);
    let dropped: Vec<_> = done
        .iter()
        .filter(|a| a.change == PartitionChange::Drop)
        .collect();
    assert!(dropped.iter().all(|a| a.table == "logs"), "{done:?}");
    assert!(
        dropped.iter().any(|a| a.partition.as_deref()
            == Some(month_name("logs", long_ago).as_str())
            && a.rows == Some(3)),
        "the old month went with its rows: {done:?}"
    );
    let expired: Vec<String> = admin
        .query(
            "SELECT partition::text FROM epai_month_partitions('logs')
             WHERE NOT is_default AND range_end <= $1",
            &[&cutoff],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        expired.is_empty(),
        "months past the window are gone: {expired:?}"
    );
    let kept = partitions(&admin, "logs").await;
    assert!(kept.contains(&month_name("logs", add_months(later, 4))));
    assert!(
        partitions(&admin, "ingestion_events")
            .await
            .contains(&month_name("ingestion_events", now)),
        "events are kept forever by default"
    );
    let logs_left: i64 = admin
        .query_one("SELECT count(*) FROM logs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logs_left, 1, "only the row from within the window is left");

    // The DEFAULT partition is purged too.
    insert_log_at(&admin, utc(2000, 1, 1)).await;
    let done = store
        .maintain_partitions(&policy, false, later)
        .await
        .unwrap();
    assert_eq!(
        changes(&done),
        [(
            "logs".to_owned(),
            PartitionChange::Purge,
            "logs_default".to_owned(),
            Some(1)
        )]
    );
}

#[tokio::test]
async fn a_table_another_process_is_maintaining_is_skipped() {
    let db = TestDatabase::migrated().await;
    let mut admin = db.admin().await;
    let store = db.store();
    let tx = admin.transaction().await.unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('epai.partitions'), hashtext('logs'))",
        &[],
    )
    .await
    .unwrap();
    let policy = RetentionPolicy {
        months_ahead: 6,
        ..RetentionPolicy::default()
    };
    let done = store
        .maintain_partitions(&policy, false, Utc::now())
        .await
        .unwrap();
    let logs: Vec<_> = done.iter().filter(|a| a.table == "logs").collect();
    assert_eq!(logs.len(), 1, "{done:?}");
    assert_eq!(logs[0].change, PartitionChange::Skip);
    assert!(
        done.iter()
            .any(|a| a.table == "ingestion_events" && a.change == PartitionChange::Create),
        "the other table is maintained meanwhile: {done:?}"
    );
    tx.rollback().await.unwrap();
    let done = store
        .maintain_partitions(&policy, false, Utc::now())
        .await
        .unwrap();
    assert!(
        done.iter()
            .any(|a| a.table == "logs" && a.change == PartitionChange::Create),
        "{done:?}"
    );
}

#[tokio::test]
async fn partitions_read_directly_show_nothing_to_the_api_roles() {
    let db = TestDatabase::migrated().await;
    let mut admin = db.admin().await;
    let acme = insert_partner(&admin, "acme").await;
    insert_tenant_rows(&admin, &acme, insert_model(&admin).await).await;
    let partition = month_name("ingestion_events", Utc::now());
    // A later partition, as maintenance makes them, gets the same treatment.
    db.store()
        .maintain_partitions(
            &RetentionPolicy {
                months_ahead: 5,
                ..RetentionPolicy::default()
            },
            false,
            Utc::now(),
        )
        .await
        .unwrap();
    let later = month_name("logs", add_months(Utc::now(), 5));
    for table in [partition.as_str(), "logs_default", later.as_str()] {
        for user in [Some(acme.user), None] {
            let tx = begin_as(&mut admin, user).await;
            let read = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await;
            let error = read.expect_err("no privilege on a partition");
            assert_eq!(
                error.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{table}: {error}"
            );
        }
        let rls: bool = admin
            .query_one(
                "SELECT relrowsecurity FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert!(rls, "{table} has row-level security enabled");
    }
    // Through the parent the tenant sees its row.
    let tx = begin_as(&mut admin, Some(acme.user)).await;
    let visible: i64 = tx
        .query_one("SELECT count(*) FROM ingestion_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible, 1);
}

/// The plans PostgreSQL chose for every statement `sql` ran, including those inside functions,
/// run as `user` (auto_explain, reported as notices).
async fn plans_of(db: &TestDatabase, user: epai_domain::AuthUserId, sql: &str) -> String {
    let (client, mut connection) = db
        .target()
        .admin_config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = notices.send(notice.message().to_owned());
            }
        }
    });
    let claims = serde_json::json!({"sub": user, "role": "authenticated"}).to_string();
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_level = notice;
             SET client_min_messages = notice;
             BEGIN",
        )
        .await
        .unwrap();
    client
        .execute(
            "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
            &[&claims],
        )
        .await
        .unwrap();
    client.batch_execute(sql).await.unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    drop(client);
    let _ = driver.await;
    let mut plans = String::new();
    while let Ok(notice) = received.try_recv() {
        plans.push_str(&notice);
        plans.push('\n');
    }
    plans
}

#[tokio::test]
async fn reads_of_the_partitioned_tables_use_their_indexes_and_skip_old_months() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    // Forty partners with four months of history each: the one asked about holds 1/40th.
    let mut partners = Vec::new();
    for i in 0..40 {
        partners.push(insert_partner(&admin, &format!("p{i}")).await);
    }
    let ids: Vec<Uuid> = partners.iter().map(|p| p.partner.as_uuid()).collect();
    admin
        .execute(
            "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, occurred_at, created_at)
             SELECT p, 'page_view', '{}', 's', '1', now() - make_interval(hours => h), now() - make_interval(hours => h)
             FROM unnest($1::uuid[]) AS p, generate_series(0, 120 * 24, 3) AS h",
            &[&ids],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO logs (partner_id, endpoint, method, status, created_at)
             SELECT p, '/v1/events', 'POST', 202, now() - make_interval(hours => h)
             FROM unnest($1::uuid[]) AS p, generate_series(0, 120 * 24, 3) AS h",
            &[&ids],
        )
        .await
        .unwrap();
    // The history landed in DEFAULT (its months had no partition yet); maintenance moves it.
    db.store()
        .maintain_partitions(&RetentionPolicy::default(), false, Utc::now())
        .await
        .unwrap();
    admin
        .batch_execute("ANALYZE ingestion_events; ANALYZE logs")
        .await
        .unwrap();
    let user = partners[7].user;
    let events_list = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/queries/events/list.sql"
    ))
    .unwrap();

    for (what, sql, table) in [
        (
            "get_logs_for_partner",
            "SELECT * FROM get_logs_for_partner(100, 0)".to_owned(),
            "logs",
        ),
        (
            "events/list",
            // The named query itself, with its parameters: the first page, no filter.
            format!(
                "PREPARE events_list (text, timestamptz, timestamptz, timestamptz, uuid, bigint) AS {events_list};
                 EXECUTE events_list (NULL, NULL, NULL, NULL, NULL, 50)"
            ),
            "ingestion_events",
        ),
    ] {
        let plans = plans_of(&db, user, &sql).await;
        println!("{what}:\n{plans}");
        assert!(plans.contains(&format!("{table}_p")), "{what} reads partitions:\n{plans}");
        // A nearly empty partition (this month's first day, the months ahead) is rightly
        // scanned whole; one with history never is.
        let full: Vec<String> = admin
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = $1::text::regclass AND c.reltuples >= 1000",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(full.len() >= 3, "{table}: {full:?}");
        for partition in &full {
            assert!(
                !plans.contains(&format!("Seq Scan on {partition} ")),
                "{what} scans {partition} whole:\n{plans}"
            );
        }
        assert!(plans.contains("Index"), "{what} uses an index:\n{plans}");
    }
    // The usage summary reads the daily counts (migration 13), not the events: no partition of
    // ingestion_events is opened at all.
    let plans = plans_of(&db, user, "SELECT * FROM get_partner_usage_summary(30)").await;
    assert!(
        plans.contains("ingestion_event_daily_counts_pkey")
            && !plans.contains("ingestion_events_p"),
        "the usage summary reads the daily counts by index:\n{plans}"
    );
}
