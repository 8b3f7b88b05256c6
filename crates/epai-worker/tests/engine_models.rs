//! The engine's series models run by a worker on a partner's real events: a planted spike is
//! reported on its day, and the forecast carries intervals.

use std::time::Duration;

use chrono::{Days, TimeZone, Utc};
use epai_domain::{Email, PartnerName};
use epai_store::testing::TestDatabase;
use epai_store::{NewEvent, NewPartner, RecomputeOnIngest};
use epai_worker::{AnomalyDetection, Models, Outcome, VolumeForecast, Worker, WorkerOptions};
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
                data: json!({ "n": n }),
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
