//! Feature extraction for models, and insights written back in place.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use epai_domain::PartnerId;
use epai_store::testing::TestDatabase;
use epai_store::{FeatureRequest, NewEvent, NewInsight};
use serde_json::json;
use uuid::Uuid;

use crate::support::insert_partner;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn event(
    partner: PartnerId,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        partner_id: partner,
        event_type: event_type.into(),
        data: data.into(),
        source: "test".into(),
        version: "1".into(),
        metadata: None,
        occurred_at,
        created_at: None,
    }
}

#[tokio::test]
async fn daily_counts_are_per_type_and_day_with_empty_days_as_zero() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let acme = insert_partner(&admin, "acme").await.partner;
    let other = insert_partner(&admin, "other").await.partner;
    let events = vec![
        event(acme, "click", at(18, 1), json!({})),
        event(acme, "click", at(18, 23), json!({})),
        event(acme, "click", at(20, 9), json!({})),
        event(acme, "signup", at(19, 9), json!({})),
        event(acme, "click", at(10, 9), json!({})),
        event(other, "click", at(19, 9), json!({})),
    ];
    let store = db.store();
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();
    let request = FeatureRequest {
        daily_count_days: 4,
        ..FeatureRequest::NONE
    };
    let features = store
        .as_service_role(async |s| s.partner_features(acme, request, at(20, 12)).await)
        .await
        .unwrap();
    let first_day = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
    let series: Vec<(&str, NaiveDate, &[i64])> = features
        .daily_counts
        .iter()
        .map(|s| (s.event_type.as_str(), s.first_day, s.counts.as_slice()))
        .collect();
    assert_eq!(
        series,
        [
            ("click", first_day, &[0, 2, 0, 1][..]),
            ("signup", first_day, &[0, 0, 1, 0][..]),
        ]
    );
    assert!(features.entities.is_empty(), "not requested");
}

#[tokio::test]
async fn entities_are_found_under_any_of_the_usual_id_keys() {
    let db = TestDatabase::migrated().await;
    let acme = insert_partner(&db.admin().await, "acme").await.partner;
    let events = vec![
        event(acme, "login", at(1, 9), json!({"user_id": "u1"})),
        event(acme, "login", at(5, 9), json!({"userId": "u1"})),
        event(acme, "login", at(5, 10), json!({"userId": "u1"})),
        event(acme, "login", at(3, 9), json!({"entity_id": "e2"})),
        event(acme, "login", at(4, 9), json!({"nobody": true})),
    ];
    let store = db.store();
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();
    let request = FeatureRequest {
        max_entities: 10,
        entity_days: 30,
        ..FeatureRequest::NONE
    };
    let features = store
        .as_service_role(async |s| s.partner_features(acme, request, at(10, 0)).await)
        .await
        .unwrap();
    assert!(features.daily_counts.is_empty(), "not requested");
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let entities: Vec<(&str, Vec<(NaiveDate, i64)>)> = features
        .entities
        .iter()
        .map(|e| {
            let days = e.days.iter().map(|d| (d.day, d.events)).collect();
            (e.entity_id.as_str(), days)
        })
        .collect();
    assert_eq!(
        entities,
        [
            ("u1", vec![(day(1), 1), (day(5), 2)]),
            ("e2", vec![(day(3), 1)])
        ],
        "most recently active first, each entity's days oldest first"
    );
}

#[tokio::test]
async fn the_latest_events_of_each_requested_type_are_loaded_oldest_first() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let acme = insert_partner(&admin, "acme").await.partner;
    let other = insert_partner(&admin, "other").await.partner;
    let mut events: Vec<NewEvent> = (1..=5)
        .map(|d| event(acme, "lead", at(d, 9), json!({"leadId": format!("l{d}")})))
        .collect();
    events.push(event(
        acme,
        "sales_transaction",
        at(4, 9),
        json!({"userId": "l1"}),
    ));
    events.push(event(acme, "page_view", at(4, 9), json!({})));
    events.push(event(acme, "lead", at(12, 9), json!({"leadId": "future"})));
    events.push(event(other, "lead", at(5, 10), json!({"leadId": "theirs"})));
    let store = db.store();
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();
    let request = FeatureRequest {
        event_types: &["lead", "sales_transaction"],
        events_per_type: 3,
        ..FeatureRequest::NONE
    };
    let features = store
        .as_service_role(async |s| s.partner_features(acme, request, at(10, 0)).await)
        .await
        .unwrap();
    let leads: Vec<&str> = features
        .events_of("lead")
        .map(|e| e.data["leadId"].as_str().unwrap())
        .collect();
    assert_eq!(
        leads,
        ["l3", "l4", "l5"],
        "the latest three, none after now"
    );
    let sales: Vec<DateTime<Utc>> = features
        .events_of("sales_transaction")
        .map(|e| e.occurred_at)
        .collect();
    assert_eq!(sales, [at(4, 9)]);
    assert_eq!(features.events_of("page_view").count(), 0, "not requested");
    assert!(features.daily_counts.is_empty() && features.entities.is_empty());
}

#[tokio::test]
async fn an_insight_about_the_same_subject_is_updated_in_place() {
    let db = TestDatabase::migrated().await;
    let acme = insert_partner(&db.admin().await, "acme").await.partner;
    let store = db.store();
    let write = async |subject: &str, title: &str, now: DateTime<Utc>| {
        let insight = NewInsight {
            subject: subject.into(),
            content: json!({"title": title}),
            metadata: None,
        };
        store
            .as_service_role(async |s| {
                s.upsert_insight(acme, "event_volume_forecast", &insight, now)
                    .await
            })
            .await
            .unwrap()
    };
    let first = write("click", "first", at(1, 0)).await;
    let again = write("click", "second", at(2, 0)).await;
    let other = write("signup", "other", at(2, 0)).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    let row = db
        .admin()
        .await
        .query_one(
            "SELECT content->>'title', created_at, updated_at, (SELECT count(*) FROM insights) FROM insights WHERE id = $1",
            &[&first],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "second");
    assert_eq!(row.get::<_, DateTime<Utc>>(1), at(1, 0));
    assert_eq!(row.get::<_, DateTime<Utc>>(2), at(2, 0));
    assert_eq!(row.get::<_, i64>(3), 2);

    let unknown = store
        .as_service_role(async |s| {
            let insight = NewInsight {
                subject: "x".into(),
                content: json!({}),
                metadata: None,
            };
            s.upsert_insight(acme, "no_such_model", &insight, at(3, 0))
                .await
        })
        .await;
    assert!(matches!(unknown, Err(epai_store::StoreError::NotFound(_))));
}
