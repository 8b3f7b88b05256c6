//! `ingestion_event_daily_counts` (migrations 13 and 14) always equals a count of the stored
//! events per partner, UTC day of ingestion, event type and UTC day of occurrence, and
//! `ingestion_entity_daily_counts` (migration 15) the same count per entity instead of type:
//! under concurrent group commits, multi-row inserts, updates and deletes, and through
//! retention (partition drops, default-partition purges) and TRUNCATE. The usage summary and
//! the models read them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use epai_store::testing::TestDatabase;
use epai_store::{IngestOptions, IngestWriter, NewEvent, RetentionPolicy};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::support::*;

/// Events per (partner, day of ingestion, event type or entity, day of occurrence).
type Counts = BTreeMap<(Uuid, NaiveDate, String, NaiveDate), i64>;

async fn counts(admin: &Client, sql: &str) -> Counts {
    admin
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2), r.get(3)), r.get(4)))
        .collect()
}

/// The maintained counts per event type, slots summed, days whose sum is zero left out.
async fn maintained(admin: &Client) -> Counts {
    counts(
        admin,
        "SELECT partner_id, day, event_type, occurred_day, sum(events)::bigint
         FROM ingestion_event_daily_counts GROUP BY 1, 2, 3, 4 HAVING sum(events) <> 0",
    )
    .await
}

/// The same figures counted from the events themselves.
async fn counted(admin: &Client) -> Counts {
    counts(
        admin,
        "SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, event_type,
                (occurred_at AT TIME ZONE 'UTC')::date, count(*)
         FROM ingestion_events WHERE partner_id IS NOT NULL GROUP BY 1, 2, 3, 4",
    )
    .await
}

/// The maintained counts per entity, slots summed, days whose sum is zero left out.
async fn maintained_per_entity(admin: &Client) -> Counts {
    counts(
        admin,
        "SELECT partner_id, day, entity_id, occurred_day, sum(events)::bigint
         FROM ingestion_entity_daily_counts GROUP BY 1, 2, 3, 4 HAVING sum(events) <> 0",
    )
    .await
}

/// Counted from the events: the entity is the first of `user_id`, `userId` and `entity_id`,
/// when at most 200 characters long.
async fn counted_per_entity(admin: &Client) -> Counts {
    counts(
        admin,
        "SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, entity,
                (occurred_at AT TIME ZONE 'UTC')::date, count(*)
         FROM (SELECT *, coalesce(data->>'user_id', data->>'userId', data->>'entity_id') AS entity
               FROM ingestion_events) e
         WHERE partner_id IS NOT NULL AND entity IS NOT NULL AND length(entity) <= 200
         GROUP BY 1, 2, 3, 4",
    )
    .await
}

/// Checks both tables; returns the counts per event type.
async fn assert_counts_exact(admin: &Client, when: &str) -> Counts {
    let rows = counted(admin).await;
    assert_eq!(maintained(admin).await, rows, "{when}");
    assert_eq!(
        maintained_per_entity(admin).await,
        counted_per_entity(admin).await,
        "{when}: per entity"
    );
    rows
}

/// An event of `user` when there is one, under the key the index picks.
fn entity_data(user: Option<usize>) -> serde_json::Value {
    match user {
        None => json!({"n": 1}),
        Some(u) => match u % 3 {
            0 => json!({"user_id": format!("u{u}")}),
            1 => json!({"userId": format!("u{u}"), "entity_id": "shadowed"}),
            _ => json!({"entity_id": format!("u{u}")}),
        },
    }
}

fn event(
    partner: Uuid,
    event_type: &str,
    user: Option<usize>,
    created_at: Option<DateTime<Utc>>,
) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        partner_id: epai_domain::PartnerId::new(partner),
        event_type: event_type.to_owned(),
        data: entity_data(user).into(),
        source: "test".into(),
        version: "1".into(),
        metadata: None,
        occurred_at: Utc::now(),
        created_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_stay_exact_under_concurrent_group_commits_inserts_updates_and_deletes() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let partners = [
        insert_partner(&admin, "a").await.partner.as_uuid(),
        insert_partner(&admin, "b").await.partner.as_uuid(),
    ];
    let store = db.store();
    let (writer, writers) = IngestWriter::start(
        store,
        IngestOptions {
            writers: 4,
            ..IngestOptions::default()
        },
    );
    let yesterday = Utc::now() - Duration::from_secs(24 * 3600);

    let mut work = JoinSet::new();
    // Requests of 1 to 7 events, many at once, so the writers store several per commit and
    // commit at the same time as one another.
    for client in 0..16usize {
        let writer = writer.clone();
        work.spawn(async move {
            for request in 0..20usize {
                let events = (0..=(client + request) % 7)
                    .map(|i| {
                        let partner = partners[(client + i) % 2];
                        let event_type = ["page_view", "click", "signup"][(request + i) % 3];
                        let created_at = (i % 4 == 0).then_some(yesterday);
                        let user = (i % 5 != 0).then_some(client % 4 + i);
                        event(partner, event_type, user, created_at)
                    })
                    .collect();
                writer.write(events).await.unwrap();
            }
        });
    }
    // Meanwhile: multi-row inserts, deletes and updates on connections of their own. Each
    // connection deletes and moves only rows it inserted (tagged in `data`): rows moved to
    // another partition under a concurrent lock would fail with a serialization error, which is
    // PostgreSQL's rule for such updates, not what is tested here.
    for connection in 0..3i32 {
        let sql = db.admin().await;
        work.spawn(async move {
            for round in 0..10usize {
                let own = partners[(usize::try_from(connection).unwrap() + round) % 2];
                sql.execute(
                    "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, created_at)
                     SELECT $1, 'page_view', jsonb_build_object('writer', $2::int, 'user_id', 'w' || g % 4),
                            't', '1',
                            now() - make_interval(days => g % 3)
                     FROM generate_series(1, 25) AS g",
                    &[&own, &connection],
                )
                .await
                .unwrap();
                sql.execute(
                    "DELETE FROM ingestion_events
                     WHERE id IN (SELECT id FROM ingestion_events
                                  WHERE partner_id = $1 AND (data->>'writer')::int = $2 LIMIT 5)",
                    &[&own, &connection],
                )
                .await
                .unwrap();
                // Moves events to another type, entity, day of ingestion (and partition) and
                // day of occurrence: both the old and the new count change.
                sql.execute(
                    "UPDATE ingestion_events SET event_type = 'moved', created_at = created_at - interval '40 days',
                                                 occurred_at = occurred_at - interval '3 days',
                                                 data = data || '{\"user_id\": \"moved\"}'
                     WHERE id IN (SELECT id FROM ingestion_events
                                  WHERE partner_id = $1 AND (data->>'writer')::int = $2
                                    AND event_type <> 'moved' LIMIT 3)",
                    &[&own, &connection],
                )
                .await
                .unwrap();
            }
        });
    }
    while let Some(done) = work.join_next().await {
        done.unwrap();
    }
    drop(writer);
    let mut writers = writers;
    while writers.join_next().await.is_some() {}

    let rows = assert_counts_exact(&admin, "after concurrent writes").await;
    assert!(
        rows.keys().any(|(_, _, t, _)| t == "moved") && rows.len() > 10,
        "the workload wrote several days and types: {rows:?}"
    );
    let slots: i64 = admin
        .query_one(
            "SELECT count(DISTINCT slot) FROM ingestion_event_daily_counts",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(slots > 1, "concurrent writers add into separate slots");
    let entities = maintained_per_entity(&admin).await;
    assert!(
        entities.keys().any(|(_, _, e, _)| e == "moved")
            && entities.keys().any(|(_, _, e, _)| e == "u1")
            && !entities.keys().any(|(_, _, e, _)| e == "shadowed"),
        "entities of every key, the first key present winning: {entities:?}"
    );

    admin
        .batch_execute("TRUNCATE ingestion_events")
        .await
        .unwrap();
    assert_counts_exact(&admin, "after TRUNCATE").await;
    assert!(maintained(&admin).await.is_empty());
    assert!(maintained_per_entity(&admin).await.is_empty());
}

#[tokio::test]
async fn retention_keeps_the_counts_equal_to_the_events_left() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let admin = db.admin().await;
    let a = insert_partner(&admin, "a").await.partner.as_uuid();
    let b = insert_partner(&admin, "b").await.partner.as_uuid();
    let now = Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap();
    let insert = async |partner: Uuid, at: DateTime<Utc>, rows: i32| {
        admin
            .execute(
                "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, created_at)
                 SELECT $1, 'page_view', jsonb_build_object('user_id', 'u' || g % 2), 't', '1', $2
                 FROM generate_series(1, $3) AS g",
                &[&partner, &at, &rows],
            )
            .await
            .unwrap();
    };
    // January and March get month partitions (the first pass moves them out of the default
    // partition); the events of late May stay within the retention window.
    insert(a, Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap(), 7).await;
    insert(b, Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 0).unwrap(), 2).await;
    insert(a, Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(), 5).await;
    insert(a, Utc.with_ymd_and_hms(2026, 5, 28, 9, 0, 0).unwrap(), 4).await;
    let keep_all = RetentionPolicy {
        logs: None,
        events: None,
        months_ahead: 1,
    };
    store
        .maintain_partitions(&keep_all, false, now)
        .await
        .unwrap();
    assert_counts_exact(&admin, "after moving rows into month partitions").await;

    // February has no partition: a row arriving now for it lands in the default partition and
    // is purged there, the month partitions of January and March are dropped.
    insert(b, Utc.with_ymd_and_hms(2026, 2, 14, 10, 0, 0).unwrap(), 3).await;
    let partitions_before: i64 = admin
        .query_one(
            "SELECT count(*) FROM epai_month_partitions('ingestion_events') WHERE NOT is_default",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let ninety_days = RetentionPolicy {
        events: Some(Duration::from_secs(60 * 24 * 3600)),
        ..keep_all
    };
    let actions = store
        .maintain_partitions(&ninety_days, false, now)
        .await
        .unwrap();
    let changes: Vec<_> = actions
        .iter()
        .filter(|a| a.table == "ingestion_events")
        .map(|a| (a.change, a.partition.clone().unwrap_or_default(), a.rows))
        .collect();
    assert!(
        changes
            .iter()
            .any(|(c, p, _)| *c == epai_store::PartitionChange::Drop
                && p == "ingestion_events_p2026_01"),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|(c, _, rows)| *c == epai_store::PartitionChange::Purge && *rows == Some(3)),
        "{changes:?}"
    );
    let partitions_after: i64 = admin
        .query_one(
            "SELECT count(*) FROM epai_month_partitions('ingestion_events') WHERE NOT is_default",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(partitions_after < partitions_before);

    let rows = assert_counts_exact(&admin, "after dropping and purging expired events").await;
    let days: Vec<NaiveDate> = rows.keys().map(|(_, day, _, _)| *day).collect();
    assert_eq!(
        days,
        [NaiveDate::from_ymd_opt(2026, 5, 28).unwrap()],
        "only the events inside the window are counted"
    );
    assert_eq!(rows.values().sum::<i64>(), 4);
    let entities = maintained_per_entity(&admin).await;
    assert_eq!(entities.values().sum::<i64>(), 4, "{entities:?}");
}

#[tokio::test]
async fn the_migrations_count_the_events_already_stored() {
    let db = TestDatabase::migrated_to(12).await;
    let admin = db.admin().await;
    let a = insert_partner(&admin, "a").await;
    for (days_ago, data) in [
        (0u64, json!({"user_id": "u1"})),
        (0, json!({})),
        (1, json!({"userId": "u1"})),
        (3, json!({"entity_id": "e2"})),
    ] {
        let at = Utc::now().checked_sub_days(Days::new(days_ago)).unwrap();
        admin
            .execute(
                "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, created_at)
                 VALUES ($1, 'page_view', $2, 't', '1', $3)",
                &[&a.partner.as_uuid(), &data, &at],
            )
            .await
            .unwrap();
    }
    epai_store::migrate(db.target()).await.unwrap();

    assert_counts_exact(&admin, "after the backfill").await;
    assert_eq!(maintained_per_entity(&admin).await.len(), 3);
    let store = db.store();
    let summary = store
        .as_user(a.user, async |t| t.usage_summary(7).await)
        .await
        .unwrap();
    let events: Vec<i32> = summary.iter().map(|d| d.event_count).collect();
    assert_eq!(events, [0, 0, 0, 1, 0, 1, 2]);
    let totals = store
        .as_user(a.user, async |t| t.usage_totals().await)
        .await
        .unwrap();
    assert_eq!(totals.total_ingestion_events, 4);
}

#[tokio::test]
async fn an_entity_id_too_long_for_an_id_is_stored_but_not_counted() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let a = insert_partner(&admin, "a").await.partner.as_uuid();
    let longest = "x".repeat(200);
    let events: Vec<NewEvent> = [longest.clone(), "y".repeat(201), "z".repeat(20_000)]
        .into_iter()
        .map(|user_id| NewEvent {
            data: json!({ "user_id": user_id }).into(),
            ..event(a, "login", None, None)
        })
        .collect();
    db.store()
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();

    let stored: i64 = admin
        .query_one("SELECT count(*) FROM ingestion_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3, "every event is stored");
    assert_counts_exact(&admin, "after long ids").await;
    let entities: Vec<String> = maintained_per_entity(&admin)
        .await
        .into_keys()
        .map(|(_, _, entity, _)| entity)
        .collect();
    assert_eq!(entities, [longest]);
}
