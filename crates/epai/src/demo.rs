//! `epai demo`: a partner with six weeks of events shaped like a real product's traffic, so
//! every screen and model has something to show.

use chrono::{DateTime, Duration, Utc};
use epai_domain::{Email, PartnerId, PartnerName, Password};
use epai_store::{NewEvent, NewPartner, PartnerRecord, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

pub const DAYS: i64 = 42;
const DEMO_EMAIL: &str = "demo@epai.local";
const USERS: usize = 60;

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

/// Six weeks of traffic ending at `now`: page views with a weekly rhythm and a slow upward
/// trend, engagement by a population of users some of whom drift away, concerts with capacity
/// and attendance, leads of whom some later buy.
pub fn generate(partner: PartnerId, now: DateTime<Utc>, seed: u64) -> Vec<NewEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
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
        for _ in 0..rng.random_range(2..6) {
            lead_id += 1;
            let at = date + Duration::seconds(rng.random_range(0..86_400));
            let engaged: f64 = rng.random_range(0.0..1.0);
            events.push(event(
                partner,
                "lead",
                json!({
                    "leadId": format!("lead-{lead_id:04}"),
                    "email": format!("lead{lead_id}@customer.example"),
                    "name": format!("Lead {lead_id}"),
                    "source": pick(&mut rng, &["webinar", "newsletter", "ads"]),
                    "attributes": {
                        "industry": pick(&mut rng, &["music", "hospitality", "education"]),
                        "company_size": rng.random_range(1..500),
                        "budget": rng.random_range(500..20_000),
                        "engagement_score": (engaged * 100.0).round(),
                    },
                }),
                at,
            ));
            if rng.random_bool(engaged * 0.6) {
                events.push(event(
                    partner,
                    "sales_transaction",
                    json!({
                        "transactionId": format!("tx-{lead_id:04}"),
                        "userId": format!("lead-{lead_id:04}"),
                        "productId": "season-pass",
                        "value": rng.random_range(40..400),
                        "currency": "EUR",
                        "quantity": 1,
                    }),
                    at + Duration::hours(rng.random_range(1..72)),
                ));
            }
        }
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
        data,
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
