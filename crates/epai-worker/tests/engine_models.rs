//! The engine's models run by a worker on a partner's real events: a planted spike is reported
//! on its day, the forecast carries intervals, the next announced event gets an attendance
//! forecast and leads are scored from the sales that followed them.

use std::time::Duration;

use chrono::{Days, TimeZone, Utc};
use epai_domain::{Email, PartnerName};
use epai_store::testing::TestDatabase;
use epai_store::{NewEvent, NewPartner, RecomputeOnIngest};
use epai_worker::{
    AnomalyDetection, AttendanceForecast, EntityRisk, LeadScoring, Models, Outcome, VolumeForecast,
    Worker, WorkerOptions,
};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn a_worker_turns_sixty_days_of_events_into_a_forecast_and_finds_the_planted_spike() {
    let db = TestDatabase::migrated().await;
    let models = Models::new().with(VolumeForecast).with(AnomalyDetection);
    let store = db.store().recomputing_on_ingest(RecomputeOnIngest {
        models: models.names(),
        debounce: Duration::ZERO,
    });
    let new = NewPartner {
        name: PartnerName::parse("Acme").unwrap(),
        email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple())).unwrap(),
        password_hash: None,
    };
    let partner = store
        .as_service_role(async |s| s.create_partner(&new).await)
        .await
        .unwrap()
        .id;

    // Sixty days of page views with a weekly rhythm, and four times the usual on one day.
    let now = Utc::now();
    let first_day = now.date_naive() - Days::new(59);
    let spike_day = now.date_naive() - Days::new(3);
    let mut events = Vec::new();
    for offset in 0..60u64 {
        let day = first_day + Days::new(offset);
        let weekend = matches!(day.format("%u").to_string().as_str(), "6" | "7");
        let mut count = if weekend { 30 } else { 20 } + (offset % 3) as usize;
        if day == spike_day {
            count *= 4;
        }
        for n in 0..count {
            events.push(NewEvent {
                id: Uuid::now_v7(),
                partner_id: partner,
                event_type: "page_view".into(),
                data: json!({ "n": n }).into(),
                source: "test".into(),
                version: "1".into(),
                metadata: None,
                occurred_at: Utc.from_utc_datetime(&day.and_hms_opt(10, 0, 0).unwrap()),
                created_at: None,
            });
        }
    }
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();

    let worker = Worker::new(
        store.clone(),
        models,
        WorkerOptions {
            visibility: Duration::from_secs(60),
            idle_poll: Duration::from_secs(1),
        },
    );
    let later = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Empty);

    let rows = db
        .admin()
        .await
        .query(
            "SELECT m.name, i.subject, i.content FROM insights i JOIN models m ON m.id = i.model_id
             WHERE i.partner_id = $1 ORDER BY m.name",
            &[&partner.as_uuid()],
        )
        .await
        .unwrap();
    let insights: Vec<(String, String, Value)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(insights.len(), 2, "{insights:?}");

    let (_, subject, anomaly) = &insights[0];
    assert_eq!(subject, "page_view");
    let flagged: Vec<&Value> = anomaly["details"]["scan"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(
        flagged
            .iter()
            .any(|a| a["date"] == spike_day.to_string() && a["direction"] == "spike"),
        "the spike on {spike_day} was not reported: {anomaly}"
    );
    assert!(anomaly["title"].is_string() && anomaly["recommendation"].is_string());
    assert!(
        anomaly["description"]
            .as_str()
            .unwrap()
            .contains(&spike_day.to_string()),
        "the description names the day: {}",
        anomaly["description"]
    );

    let (_, _, forecast) = &insights[1];
    let confidence = forecast["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    assert_eq!(forecast["details"]["event_type"], "page_view");
    let points = forecast["details"]["forecast"]["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no forecast points in {forecast}"));
    assert_eq!(points.len(), 14);
    assert_eq!(points[0]["intervals"].as_array().unwrap().len(), 2);
}

fn event_at(
    partner: epai_domain::PartnerId,
    event_type: &str,
    at: chrono::DateTime<Utc>,
    data: Value,
) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        partner_id: partner,
        event_type: event_type.into(),
        data: data.into(),
        source: "test".into(),
        version: "1".into(),
        metadata: None,
        occurred_at: at,
        created_at: None,
    }
}

#[tokio::test]
async fn per_partner_models_learn_from_attendance_and_leads_and_skip_partners_without_them() {
    let db = TestDatabase::migrated().await;
    let models = Models::new()
        .with(AttendanceForecast)
        .with(LeadScoring)
        .with(EntityRisk);
    let store = db.store().recomputing_on_ingest(RecomputeOnIngest {
        models: models.names(),
        debounce: Duration::ZERO,
    });
    let create = async |name: &str| {
        let new = NewPartner {
            name: PartnerName::parse(name).unwrap(),
            email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple())).unwrap(),
            password_hash: None,
        };
        store
            .as_service_role(async |s| s.create_partner(&new).await)
            .await
            .unwrap()
            .id
    };
    let venue = create("Venue").await;
    let shop = create("Shop").await;

    let now = Utc::now();
    let mut events = Vec::new();
    // Fourteen weekly concerts: the bigger the marketing budget, the fuller the hall.
    for week in 1..=14u32 {
        let at = now - chrono::Duration::days(i64::from(week) * 7);
        let budget = 200 * (week % 5 + 1);
        events.push(event_at(
            venue,
            "event_attendance",
            at,
            json!({
                "venue_id": "hall", "capacity": 400, "attendee_count": 120 + budget / 10,
                "event_date": at.date_naive().to_string(), "genre": "jazz",
                "ticket_price": 30, "marketing_budget": budget,
            }),
        ));
    }
    let planned = (now + chrono::Duration::days(6)).date_naive();
    events.push(event_at(
        venue,
        "event_attendance",
        now - chrono::Duration::days(1),
        json!({
            "venue_id": "hall", "capacity": 400, "event_date": planned.to_string(), "genre": "jazz",
            "ticket_price": 30, "marketing_budget": 600,
        }),
    ));
    // Forty leads; the engaged ones buy.
    for n in 0..40u32 {
        let at = now - chrono::Duration::days(i64::from(n % 20) + 3);
        let engagement = (n * 37) % 100;
        events.push(event_at(
            venue,
            "lead",
            at,
            json!({
                "leadId": format!("l{n}"), "attributes": {"engagement_score": engagement},
            }),
        ));
        if engagement > 50 {
            events.push(event_at(
                venue,
                "sales_transaction",
                at + chrono::Duration::hours(5),
                json!({"userId": format!("l{n}"), "value": 100}),
            ));
        }
    }
    for day in 0..30 {
        events.push(event_at(
            shop,
            "page_view",
            now - chrono::Duration::days(day),
            json!({}),
        ));
    }
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();

    let worker = Worker::new(
        store.clone(),
        models,
        WorkerOptions {
            visibility: Duration::from_secs(60),
            idle_poll: Duration::from_secs(1),
        },
    );
    let later = now + chrono::Duration::seconds(5);
    while worker.run_one(later).await.unwrap() != Outcome::Empty {}

    let rows = db
        .admin()
        .await
        .query(
            "SELECT i.partner_id, m.name, i.subject, i.content FROM insights i
             JOIN models m ON m.id = i.model_id ORDER BY m.name",
            &[],
        )
        .await
        .unwrap();
    let mine: Vec<(String, String, Value)> = rows
        .iter()
        .filter(|r| r.get::<_, Uuid>(0) == venue.as_uuid())
        .map(|r| (r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(
        rows.iter().all(|r| r.get::<_, Uuid>(0) != shop.as_uuid()),
        "page views alone give none of these models anything to say"
    );
    let attendance = mine
        .iter()
        .find(|(name, ..)| name == "attendance_forecast")
        .unwrap_or_else(|| panic!("no attendance insight: {mine:?}"));
    assert_eq!(attendance.1, "next_event");
    assert_eq!(attendance.2["model"], "attendance_forecast");
    assert_eq!(
        attendance.2["details"]["query"]["event_date"],
        planned.to_string()
    );
    assert!(
        attendance.2["description"]
            .as_str()
            .unwrap()
            .starts_with("Based on 14 past events, expect "),
        "{}",
        attendance.2
    );
    let leads = mine
        .iter()
        .find(|(name, ..)| name == "lead_scoring")
        .unwrap_or_else(|| panic!("no lead insight: {mine:?}"));
    assert_eq!(leads.1, "all");
    assert_eq!(leads.2["details"]["leads"], 40);
    assert!(
        leads.2["description"]
            .as_str()
            .unwrap()
            .contains("engagement score is the strongest signal"),
        "{}",
        leads.2
    );
}
