//! Insights written by a worker: listed for their partner only, and pushed to that partner's
//! open streams (`GET /v1/insights/stream`), with `Last-Event-ID` resume.

use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_domain::PartnerId;
use epai_store::{NewInsight, PartnerFeatures};
use epai_worker::{InsightModel, ModelError, Models, Outcome, Worker, WorkerOptions};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestPartner, metric_value};

/// The longest a test waits for the next piece of a stream.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One insight per event type with its total over the loaded days.
struct Totals;

impl InsightModel for Totals {
    fn name(&self) -> &'static str {
        "totals"
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        _now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        Ok(features
            .daily_counts
            .iter()
            .map(|series| NewInsight {
                subject: series.event_type.clone(),
                content: json!({
                    "title": format!("{} events", series.event_type),
                    "description": "events in the last 90 days",
                    "confidence": 1.0,
                    "recommendation": "none",
                    "total": series.counts.iter().sum::<i64>(),
                }),
                metadata: Some(json!({"subject": series.event_type})),
            })
            .collect())
    }
}

async fn worker(app: &TestApp) -> Worker {
    app.db
        .admin()
        .await
        .execute(
            "INSERT INTO models (name, version, status) VALUES ('totals', '1', 'active')",
            &[],
        )
        .await
        .unwrap();
    Worker::new(
        app.db.store(),
        Models::new().with(Totals),
        WorkerOptions::default(),
    )
}

/// Ingests `count` events of `event_type` over HTTP and queues the recomputation at `now`.
async fn ingest(
    app: &TestApp,
    partner: &TestPartner,
    event_type: &str,
    count: usize,
    now: DateTime<Utc>,
) {
    let events: Vec<Value> = (0..count)
        .map(|i| json!({"event_type": event_type, "data": {"i": i}}))
        .collect();
    let response = app
        .post_json("/v1/events/batch", &partner.key, &json!({"events": events}))
        .await;
    assert_eq!(response.status(), 202);
    let id = PartnerId::new(partner.partner_id);
    app.db
        .store()
        .as_service_role(async |s| s.enqueue(id, "totals", now, now).await)
        .await
        .unwrap();
}

async fn insight_id(app: &TestApp, partner: &TestPartner, subject: &str) -> Uuid {
    app.db
        .admin()
        .await
        .query_one(
            "SELECT id FROM insights WHERE partner_id = $1 AND subject = $2",
            &[&partner.partner_id, &subject],
        )
        .await
        .unwrap()
        .get(0)
}

/// An open `/v1/insights/stream` response, read event by event.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(app: &TestApp, key: &str, last_event_id: Option<Uuid>) -> Self {
        let mut request = app
            .client
            .get(app.url("/v1/insights/stream"))
            .header("apikey", key);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame (an event or a heartbeat), without its blank-line terminator.
    async fn next_frame(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                return frame.trim_end().to_owned();
            }
            let chunk = tokio::time::timeout(READ_TIMEOUT, self.response.chunk())
                .await
                .expect("a frame within the timeout")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `insight` event as `(id, data)`, skipping heartbeats.
    async fn next_insight(&mut self) -> (Uuid, Value) {
        loop {
            let frame = self.next_frame().await;
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(str::to_owned)
            };
            if field("event: ").as_deref() == Some("insight") {
                let id = field("id: ").expect("an id").parse().unwrap();
                let data = serde_json::from_str(&field("data: ").expect("data")).unwrap();
                return (id, data);
            }
        }
    }
}

#[tokio::test]
async fn an_idle_stream_sends_heartbeat_comments() {
    let settings = epai_server::ServerSettings {
        stream_heartbeat: Duration::from_millis(50),
        ..epai_server::ServerSettings::default()
    };
    let app = TestApp::spawn_with(
        epai_store::testing::TestDatabase::migrated().await,
        settings,
    )
    .await;
    let acme = app.partner("Acme").await;
    let mut stream = EventStream::open(&app, &acme.key, None).await;
    for _ in 0..2 {
        assert_eq!(stream.next_frame().await, ":");
    }
}

#[tokio::test]
async fn a_workers_insight_is_listed_for_its_partner_only() {
    let app = TestApp::spawn().await;
    let worker = worker(&app).await;
    let acme = app.partner("Acme").await;
    let other = app.partner("Other").await;
    let now = Utc::now();
    ingest(&app, &acme, "click", 3, now).await;
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Done);

    let page: Value = app
        .get_with_key("/v1/insights", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    let insight = &page["data"][0];
    assert_eq!(insight["model_name"], "totals");
    assert_eq!(insight["content"]["total"], 3);

    let foreign: Value = app
        .get_with_key("/v1/insights", &other.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(foreign["total"], 0);
    let id = insight["id"].as_str().unwrap();
    assert_eq!(
        app.get_with_key(&format!("/v1/insights/{id}"), &other.key)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_stream_receives_what_a_worker_writes_and_catches_up_after_a_reconnect() {
    let app = TestApp::spawn().await;
    let worker = worker(&app).await;
    let acme = app.partner("Acme").await;
    let now = Utc::now();
    let mut stream = EventStream::open(&app, &acme.key, None).await;

    ingest(&app, &acme, "click", 2, now).await;
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Done);
    let (id, data) = stream.next_insight().await;
    let click = insight_id(&app, &acme, "click").await;
    assert_eq!(id, click);
    let fetched: Value = app
        .get_with_key(&format!("/v1/insights/{id}"), &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        data, fetched,
        "the event carries the insight as the API returns it"
    );
    drop(stream);

    // While disconnected: the click insight changes and a signup insight appears.
    let later = now + chrono::Duration::seconds(10);
    ingest(&app, &acme, "signup", 1, later).await;
    ingest(&app, &acme, "click", 1, later).await;
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    let signup = insight_id(&app, &acme, "signup").await;

    let mut resumed = EventStream::open(&app, &acme.key, Some(click)).await;
    let mut missed = [resumed.next_insight().await, resumed.next_insight().await];
    missed.sort_by_key(|(id, _)| *id == signup);
    assert_eq!(missed[0].0, click);
    assert_eq!(missed[0].1["content"]["total"], 3, "the update it missed");
    assert_eq!(missed[1].0, signup);
    assert_eq!(missed[1].1["content"]["total"], 1);
}

#[tokio::test]
async fn a_stream_carries_only_its_own_partners_insights() {
    let app = TestApp::spawn().await;
    let worker = worker(&app).await;
    let acme = app.partner("Acme").await;
    let other = app.partner("Other").await;
    let now = Utc::now();
    let mut acme_stream = EventStream::open(&app, &acme.key, None).await;
    let mut other_stream = EventStream::open(&app, &other.key, None).await;

    ingest(&app, &acme, "click", 1, now).await;
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Done);
    ingest(&app, &other, "view", 1, now).await;
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Done);

    let (first_for_other, _) = other_stream.next_insight().await;
    assert_eq!(first_for_other, insight_id(&app, &other, "view").await);
    let (first_for_acme, _) = acme_stream.next_insight().await;
    assert_eq!(first_for_acme, insight_id(&app, &acme, "click").await);
}

#[tokio::test]
async fn an_embed_token_streams_only_its_scope() {
    let app = TestApp::spawn().await;
    let worker = worker(&app).await;
    let acme = app.partner("Acme").await;
    let now = Utc::now();
    ingest(&app, &acme, "click", 1, now).await;
    ingest(&app, &acme, "view", 1, now).await;
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Done);
    let view = insight_id(&app, &acme, "view").await;
    let minted: Value = app
        .post_json("/v1/embed-tokens", &acme.key, &json!({"insight_id": view}))
        .await
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap();
    let response = app
        .client
        .get(app.url("/v1/insights/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = EventStream {
        response,
        buffer: String::new(),
    };

    // Both insights change; the token may see only one of them.
    let later = now + chrono::Duration::seconds(10);
    ingest(&app, &acme, "click", 1, later).await;
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    let (id, data) = stream.next_insight().await;
    assert_eq!(id, view);
    assert_eq!(data["content"]["total"], 1);
}

#[tokio::test]
async fn a_portal_session_streams_its_partners_insights() {
    let app = TestApp::spawn().await;
    let token = app.portal_session("owner@stream.test").await;
    let store = app.db.store();
    let partner = store
        .as_service_role(async |s| s.find_partner("owner@stream.test").await)
        .await
        .unwrap()
        .id;
    let response = app
        .client
        .get(app.url("/v1/insights/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = EventStream {
        response,
        buffer: String::new(),
    };

    let insight = NewInsight {
        subject: "all".into(),
        content: json!({"title": "spike on Monday"}),
        metadata: None,
    };
    let id = store
        .as_service_role(async |s| {
            s.upsert_insight(partner, "anomaly_detection", &insight, Utc::now())
                .await
        })
        .await
        .unwrap();
    let (received, data) = stream.next_insight().await;
    assert_eq!(received, id);
    assert_eq!(data["model_name"], "anomaly_detection");
    assert_eq!(data["content"]["title"], "spike on Monday");
}

async fn get(app: &TestApp, path: &str, key: &str) -> Value {
    let response = app.get_with_key(path, key).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `epai_read_cache_total` for one read and outcome, as `/metrics` reports it.
async fn cache_count(app: &TestApp, read: &str, outcome: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    metric_value(
        &text,
        "epai_read_cache_total",
        &[("read", read), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn insight_pages_and_usage_are_cached_until_the_partner_changes() {
    let app = TestApp::spawn().await;
    let worker = worker(&app).await;
    let acme = app.partner("Acme").await;
    let now = Utc::now();
    let mut stream = EventStream::open(&app, &acme.key, None).await;
    ingest(&app, &acme, "click", 3, now).await;
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Done);
    // The insight came through the notification listener: changes are announced from now on.
    let (click, _) = stream.next_insight().await;

    let insight_hits = cache_count(&app, "insights", "hit").await;
    let usage_hits = cache_count(&app, "usage", "hit").await;
    let page = get(&app, "/v1/insights", &acme.key).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["data"][0]["content"]["total"], 3);
    assert_eq!(get(&app, "/v1/insights", &acme.key).await, page);
    let usage = get(&app, "/v1/usage?days=7", &acme.key).await;
    assert_eq!(usage["total_events"], 3);
    assert_eq!(usage["total_insights"], 1);
    assert_eq!(get(&app, "/v1/usage?days=7", &acme.key).await, usage);
    assert_eq!(
        cache_count(&app, "insights", "hit").await,
        insight_hits + 1.0
    );
    assert_eq!(cache_count(&app, "usage", "hit").await, usage_hits + 1.0);

    // Events stored through this replica show at once: the client reads its own writes.
    let later = now + chrono::Duration::seconds(10);
    ingest(&app, &acme, "click", 1, later).await;
    let usage = get(&app, "/v1/usage?days=7", &acme.key).await;
    assert_eq!(usage["total_events"], 4);

    // A worker's insights: once the stream has told of them, the page has them.
    ingest(&app, &acme, "signup", 1, later).await;
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    let signup = insight_id(&app, &acme, "signup").await;
    let mut announced = std::collections::HashSet::new();
    while !(announced.contains(&click) && announced.contains(&signup)) {
        announced.insert(stream.next_insight().await.0);
    }
    let page = get(&app, "/v1/insights", &acme.key).await;
    assert_eq!(page["total"], 2);
    let totals: std::collections::HashMap<String, Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["content"]["total"].clone(),
            )
        })
        .collect();
    assert_eq!(totals[&click.to_string()], 4, "the updated insight");
    assert_eq!(totals[&signup.to_string()], 1);
    let usage = get(&app, "/v1/usage?days=7", &acme.key).await;
    assert_eq!(usage["total_events"], 5);
    assert_eq!(usage["total_insights"], 2);

    // Another partner's change leaves acme's cached page in place, and vice versa.
    let other = app.partner("Other").await;
    assert_eq!(get(&app, "/v1/insights", &other.key).await["total"], 0);
    let hits = cache_count(&app, "insights", "hit").await;
    assert_eq!(get(&app, "/v1/insights", &acme.key).await, page);
    assert_eq!(cache_count(&app, "insights", "hit").await, hits + 1.0);
}

#[tokio::test]
async fn a_replica_that_missed_notifications_refreshes_its_cache_when_it_listens_again() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let admin = app.db.admin().await;
    let model: Uuid = admin
        .query_one(
            "INSERT INTO models (name, version, status) VALUES ('notes', '1', 'active') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let insert = "INSERT INTO insights (partner_id, model_id, content) VALUES ($1, $2, '{\"title\": \"t\"}')";
    let mut stream = EventStream::open(&app, &acme.key, None).await;
    admin
        .execute(insert, &[&acme.partner_id, &model])
        .await
        .unwrap();
    stream.next_insight().await;
    assert_eq!(get(&app, "/v1/insights", &acme.key).await["total"], 1);

    // An insight whose notification is lost (triggers off in this session): the cached page
    // does not know of it.
    admin
        .batch_execute("SET session_replication_role = replica")
        .await
        .unwrap();
    admin
        .execute(insert, &[&acme.partner_id, &model])
        .await
        .unwrap();
    admin
        .batch_execute("RESET session_replication_role")
        .await
        .unwrap();
    assert_eq!(get(&app, "/v1/insights", &acme.key).await["total"], 1);

    // The listener's connection drops and comes back: whatever it missed is read afresh.
    crate::faults::terminate_server_sessions(&app, &admin).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = app.get_with_key("/v1/insights", &acme.key).await;
        if response.status() == 200 {
            let page: Value = response.json().await.unwrap();
            if page["total"] == 2 {
                break;
            }
            assert_eq!(page["total"], 1);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cache kept the page of before the disconnection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
