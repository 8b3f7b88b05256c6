//! `epai demo`: a partner with eight weeks of events shaped like a real product's traffic, so
//! every screen and every built-in model has something to show.

use chrono::{DateTime, Duration, Utc};
use epai_domain::{Email, PartnerId, PartnerName, Password};
use epai_store::{NewEvent, NewPartner, PartnerRecord, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

pub const DAYS: i64 = 56;
const DEMO_EMAIL: &str = "demo@epai.local";
const USERS: usize = 120;

pub struct Loaded {
    pub partner: PartnerRecord,
    pub events: usize,
    pub created: bool,
    /// The portal password of a newly created demo account, shown only this once.
    pub password: Option<String>,
}

/// Creates the demo partner and its events unless it exists already.
pub async fn load(store: &Store) -> anyhow::Result<Loaded> {
    let existing = store
        .as_service_role(
            async |service| match service.find_partner(DEMO_EMAIL).await {
                Ok(partner) => Ok(Some(partner)),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            },
        )
        .await?;
    if let Some(partner) = existing {
        let events = store
            .as_user(partner.require_user()?, async |tenant| {
                tenant.usage_summary(DAYS as i32).await
            })
            .await?
            .iter()
            .map(|day| day.event_count as usize)
            .sum();
        return Ok(Loaded {
            partner,
            events,
            created: false,
            password: None,
        });
    }
    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    let password_hash = epai_server::hash_password(Password::parse(&password)?)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    let new = NewPartner {
        name: PartnerName::parse("Harbour Lights Events")?,
        email: Email::parse(DEMO_EMAIL)?,
        password_hash: Some(password_hash),
    };
    let mut count = 0;
    let partner = store
        .as_service_role(async |service| {
            let partner = service.create_partner(&new).await?;
            let events = generate(partner.id, Utc::now(), 7);
            count = events.len();
            for chunk in events.chunks(2000) {
                service.insert_events(chunk).await?;
            }
            Ok(partner)
        })
        .await?;
    Ok(Loaded {
        partner,
        events: count,
        created: true,
        password: Some(password),
    })
}

/// Eight weeks of traffic ending at `now`: page views with a weekly rhythm and a slow upward
/// trend, engagement by a population of users a quarter of whom drift away, weekend concerts
/// with capacity and attendance and two announced for the coming days, leads of whom the more
/// engaged more often buy.
pub fn generate(partner: PartnerId, now: DateTime<Utc>, seed: u64) -> Vec<NewEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    // Leads draw from their own stream: how many page views a weekday brings must not decide
    // which leads there are, or the lead model's showing would depend on the day of the demo.
    let mut lead_rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let mut events = Vec::new();
    let start = now - Duration::days(DAYS);
    // Users that stop engaging at some point during the window (churners) and loyal ones.
    let churn_day: Vec<Option<i64>> = (0..USERS)
        .map(|i| (i % 4 == 0).then(|| rng.random_range(5..DAYS - 5)))
        .collect();
    let genres = ["rock", "jazz", "electronic", "classical", "comedy"];
    let mut lead_id = 0;
    for day in 0..DAYS {
        let date = start + Duration::days(day);
        let weekday = (date.date_naive().format("%u").to_string())
            .parse::<u32>()
            .unwrap_or(1);
        let weekend_lift = if weekday >= 6 { 1.6 } else { 1.0 };
        let trend = 1.0 + day as f64 / DAYS as f64 * 0.3;
        // A newsletter three days ago drew a burst of visits: something for anomaly detection.
        let campaign_lift = if day == DAYS - 3 { 2.5 } else { 1.0 };
        let page_views =
            (120.0 * weekend_lift * trend * campaign_lift + rng.random_range(-15.0..15.0)) as usize;
        for _ in 0..page_views {
            let at = date + Duration::seconds(rng.random_range(0..86_400));
            let page = pick(
                &mut rng,
                &["/", "/events", "/events/123", "/tickets", "/about"],
            );
            events.push(event(
                partner,
                "page_view",
                json!({
                    "url": format!("https://harbourlights.example{page}"),
                    "referrer": pick(&mut rng, &["google", "newsletter", "direct"]),
                    "title": "Harbour Lights",
                    "session_id": format!("s{}", rng.random_range(0..100_000)),
                }),
                at,
            ));
        }
        for (user, churn) in churn_day.iter().enumerate() {
            if churn.is_some_and(|d| day >= d) {
                continue;
            }
            if rng.random_bool(0.55) {
                let at = date + Duration::seconds(rng.random_range(0..86_400));
                events.push(event(
                    partner,
                    "user_engagement",
                    json!({
                        "user_id": format!("user-{user:03}"),
                        "action_type": pick(&mut rng, &["click", "scroll", "share", "save"]),
                        "element_id": "event-card",
                        "engagement_time": rng.random_range(5..600),
                        "session_id": format!("s{}", rng.random_range(0..100_000)),
                    }),
                    at,
                ));
            }
        }
        if weekday == 5 || weekday == 6 {
            let capacity = [300, 500, 1200][rng.random_range(0..3)];
            let genre = pick(&mut rng, &genres);
            let price = rng.random_range(15..90);
            let budget = rng.random_range(200..3000);
            let fill = (0.55 + budget as f64 / 10_000.0 - price as f64 / 400.0
                + if weekday == 6 { 0.1 } else { 0.0 }
                + rng.random_range(-0.08..0.08))
            .clamp(0.05, 1.0);
            events.push(event(
                partner,
                "event_attendance",
                json!({
                    "event_id": format!("evt-{day:03}"),
                    "venue_id": "harbour-hall",
                    "attendee_count": (capacity as f64 * fill).round() as i64,
                    "capacity": capacity,
                    "event_date": date.date_naive().to_string(),
                    "genre": genre,
                    "ticket_price": price,
                    "marketing_budget": budget,
                    "lead_time_days": rng.random_range(7..60),
                }),
                date + Duration::hours(21),
            ));
        }
        for _ in 0..lead_rng.random_range(4..9) {
            lead_id += 1;
            let at = date + Duration::seconds(lead_rng.random_range(0..86_400));
            let engaged: f64 = lead_rng.random_range(0.0..1.0);
            let count = |rng: &mut StdRng, mean: f64| (mean * rng.random_range(0.5..1.5)).round();
            events.push(event(
                partner,
                "lead",
                json!({
                    "leadId": format!("lead-{lead_id:04}"),
                    "email": format!("lead{lead_id}@customer.example"),
                    "name": format!("Lead {lead_id}"),
                    "source": pick(&mut lead_rng, &["webinar", "newsletter", "ads"]),
                    "age": lead_rng.random_range(19..70),
                    "attributes": {
                        "industry": pick(&mut lead_rng, &["music", "hospitality", "education"]),
                        "company_size": lead_rng.random_range(1..500),
                        "budget": lead_rng.random_range(500..20_000),
                        "engagement_score": (engaged * 100.0).round(),
                        "website_visits": count(&mut lead_rng, 2.0 + 10.0 * engaged),
                        "email_opens": count(&mut lead_rng, 1.0 + 6.0 * engaged),
                        "previous_purchases": count(&mut lead_rng, 2.0 * engaged),
                        "social_media_engagement": count(&mut lead_rng, 3.0),
                    },
                }),
                at,
            ));
            if lead_rng.random_bool(0.1 + 0.8 * engaged * engaged) {
                events.push(event(
                    partner,
                    "sales_transaction",
                    json!({
                        "transactionId": format!("tx-{lead_id:04}"),
                        "userId": format!("lead-{lead_id:04}"),
                        "productId": "season-pass",
                        "value": lead_rng.random_range(40..400),
                        "currency": "EUR",
                        "quantity": 1,
                    }),
                    at + Duration::hours(lead_rng.random_range(1..72)),
                ));
            }
        }
    }
    // The next two concerts are on sale: what the attendance forecast is about.
    for (days_ahead, genre, capacity) in [(4, "jazz", 500), (9, "rock", 1200)] {
        let date = now + Duration::days(days_ahead);
        events.push(event(
            partner,
            "event_attendance",
            json!({
                "event_id": format!("evt-next-{days_ahead}"),
                "venue_id": "harbour-hall",
                "capacity": capacity,
                "event_date": date.date_naive().to_string(),
                "genre": genre,
                "ticket_price": 45,
                "marketing_budget": 1800,
                "lead_time_days": 30,
            }),
            now - Duration::days(2),
        ));
    }
    events.retain(|e| e.occurred_at <= now);
    events
}

fn event(
    partner: PartnerId,
    event_type: &str,
    data: serde_json::Value,
    occurred_at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        partner_id: partner,
        event_type: event_type.to_owned(),
        data: data.into(),
        source: "demo".to_owned(),
        version: "1.0".to_owned(),
        metadata: None,
        occurred_at,
        created_at: Some(occurred_at),
    }
}

fn pick<'a>(rng: &mut StdRng, choices: &[&'a str]) -> &'a str {
    choices[rng.random_range(0..choices.len())]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use epai_store::RecomputeOnIngest;
    use epai_store::testing::TestDatabase;
    use epai_worker::{Outcome, Worker, WorkerOptions};
    use serde_json::Value;

    #[tokio::test]
    async fn after_the_demo_every_catalogue_model_has_a_meaningful_insight() {
        let db = TestDatabase::migrated().await;
        let models = crate::workers::models();
        let store = db.store().recomputing_on_ingest(RecomputeOnIngest {
            models: models.names(),
            debounce: Duration::ZERO,
        });
        let loaded = super::load(&store).await.unwrap();
        assert!(loaded.created);

        let worker = Worker::new(
            store,
            models,
            WorkerOptions {
                visibility: Duration::from_secs(300),
                idle_poll: Duration::from_secs(1),
            },
        );
        let later = chrono::Utc::now() + chrono::Duration::seconds(5);
        let mut runs = 0;
        loop {
            match worker.run_one(later).await.unwrap() {
                Outcome::Done => runs += 1,
                Outcome::Empty => break,
                Outcome::Failed => panic!("a demo job failed"),
            }
        }
        let admin = db.admin().await;
        let catalogue: Vec<String> = admin
            .query(
                "SELECT name FROM models WHERE metadata->>'trigger' = 'events' ORDER BY name",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(runs, catalogue.len(), "one recomputation per model");
        let mut insights: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for row in admin
            .query(
                "SELECT m.name, i.content FROM insights i JOIN models m ON m.id = i.model_id
                 WHERE i.partner_id = $1",
                &[&loaded.partner.id.as_uuid()],
            )
            .await
            .unwrap()
        {
            insights.entry(row.get(0)).or_default().push(row.get(1));
        }
        for name in &catalogue {
            let contents = insights
                .get(name)
                .unwrap_or_else(|| panic!("{name} wrote no insight: {insights:?}"));
            for content in contents {
                assert_eq!(
                    &content["model"], name,
                    "content.model is the catalogue name"
                );
                assert_ne!(
                    content["details"]["kind"], "not_enough_data",
                    "{name} has too little demo data: {content}"
                );
            }
            let best = contents
                .iter()
                .filter_map(|c| c["confidence"].as_f64())
                .fold(0.0, f64::max);
            assert!(best > 0.3, "{name} earned at most {best}: {contents:?}");
        }
        let churn = &insights["entity_risk"][0];
        assert!(churn["details"]["at_risk"].as_u64().unwrap() > 0, "{churn}");
        let attendance = &insights["attendance_forecast"][0];
        assert_eq!(attendance["title"], "Attendance Forecast");
        assert_eq!(
            attendance["details"]["query"]["event_date"],
            (chrono::Utc::now() + chrono::Duration::days(4))
                .date_naive()
                .to_string(),
            "the next announced concert: {attendance}"
        );
    }
}
