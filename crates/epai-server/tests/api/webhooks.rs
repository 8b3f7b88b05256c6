//! Insight webhooks end to end: endpoints over HTTP, deliveries by a real delivery worker to a
//! real receiver on 127.0.0.1 (with the private-address override on for that), time driven
//! through `run_one(now)` so retries need no waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use epai_domain::PartnerId;
use epai_server::{ServerSettings, WebhookSettings};
use epai_store::NewInsight;
use epai_store::testing::TestDatabase;
use epai_webhooks::signature::verify;
use epai_webhooks::{
    DeliveryOptions, DeliveryWorker, Outcome, SecretCipher, SendOptions, Sender, SigningSecret,
    UrlPolicy,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{TestApp, TestPartner, problem};

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
}

impl Received {
    pub fn payload(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn verifies_with(&self, secret: &SigningSecret) -> bool {
        verify(
            secret,
            &self.id,
            self.timestamp,
            &self.body,
            &self.signature,
        )
    }
}

/// How a receiver answers a request.
pub enum Reply {
    Status(u16),
    /// Never answers.
    Hang,
}

type Script = dyn Fn(&Received, &[Received]) -> Reply + Send + Sync;

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Script>,
    arrivals: mpsc::UnboundedSender<Received>,
}

/// A webhook receiver on 127.0.0.1 that records every request and answers as `script` says
/// (given the request and every request before it).
pub struct Receiver {
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    pub arrivals: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        signature: header("webhook-signature"),
        body,
    };
    let reply = {
        let mut seen = state.seen.lock().unwrap();
        let reply = (state.script)(&received, &seen);
        seen.push(received.clone());
        reply
    };
    let _ = state.arrivals.send(received);
    match reply {
        Reply::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Reply::Hang => std::future::pending().await,
    }
}

impl Receiver {
    pub async fn start(
        script: impl Fn(&Received, &[Received]) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let state = ReceiverState {
            seen: seen.clone(),
            script: Arc::new(script),
            arrivals: arrivals_tx,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            address,
            seen,
            arrivals,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.address.port())
    }

    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The policy for tests with a local receiver: private addresses and plain http to 127.0.0.1.
pub fn local_policy() -> UrlPolicy {
    UrlPolicy {
        allow_private: true,
        http_hosts: vec!["127.0.0.1".into()],
    }
}

/// A server whose webhooks may point at 127.0.0.1, and the cipher its secrets are sealed with.
pub async fn local_app() -> (TestApp, Arc<SecretCipher>) {
    let cipher = Arc::new(SecretCipher::generate());
    let settings = ServerSettings {
        webhooks: WebhookSettings {
            cipher: cipher.clone(),
            policy: local_policy(),
            ..WebhookSettings::default()
        },
        ..ServerSettings::default()
    };
    (
        TestApp::spawn_with(TestDatabase::migrated().await, settings).await,
        cipher,
    )
}

pub fn worker(
    app: &TestApp,
    cipher: &Arc<SecretCipher>,
    options: DeliveryOptions,
) -> DeliveryWorker {
    worker_with_timeout(app, cipher, options, Duration::from_secs(10))
}

fn worker_with_timeout(
    app: &TestApp,
    cipher: &Arc<SecretCipher>,
    options: DeliveryOptions,
    timeout: Duration,
) -> DeliveryWorker {
    let sender = Sender::new(
        local_policy(),
        SendOptions {
            connect_timeout: Duration::from_secs(5),
            timeout,
        },
    )
    .unwrap();
    DeliveryWorker::new(app.db.store(), sender, cipher.clone(), options)
}

/// Creates a webhook through the API; returns its id and secret.
pub async fn create_webhook(app: &TestApp, key: &str, body: Value) -> (String, SigningSecret) {
    let response = app.post_json("/v1/webhooks", key, &body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let secret = SigningSecret::parse(created["secret"].as_str().unwrap()).unwrap();
    (
        created["webhook"]["id"].as_str().unwrap().to_owned(),
        secret,
    )
}

async fn next_due(app: &TestApp) -> Option<DateTime<Utc>> {
    app.db
        .store()
        .as_service_role(async |s| s.next_delivery_due().await)
        .await
        .unwrap()
}

/// Runs `worker` until nothing is left to do, moving the clock to each next due time.
async fn drain(app: &TestApp, worker: &DeliveryWorker, mut now: DateTime<Utc>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for _ in 0..200 {
        match worker.run_one(now).await.unwrap() {
            Outcome::Empty => match next_due(app).await {
                Some(due) if due > now => now = due,
                _ => return outcomes,
            },
            outcome => outcomes.push(outcome),
        }
    }
    panic!("the queue never drained: {outcomes:?}");
}

async fn write_insight(
    app: &TestApp,
    partner: &TestPartner,
    subject: &str,
    content: Value,
) -> String {
    let insight = NewInsight {
        subject: subject.into(),
        content,
        metadata: Some(json!({"source": "test"})),
    };
    let id = app
        .db
        .store()
        .as_service_role(async |s| {
            s.upsert_insight(
                PartnerId::new(partner.partner_id),
                "anomaly_detection",
                &insight,
                Utc::now(),
            )
            .await
        })
        .await
        .unwrap();
    id.to_string()
}

async fn deliveries(app: &TestApp, key: &str, webhook: &str) -> Vec<Value> {
    let response = app
        .get_with_key(&format!("/v1/webhooks/{webhook}/deliveries"), key)
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["data"].as_array().unwrap().clone()
}

/// Polls the security events of `partner` until one of `event_type` is stored (events are
/// written in batches off the request path).
async fn security_event(app: &TestApp, partner: uuid::Uuid, event_type: &str) -> Value {
    let admin = app.db.admin().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = admin
            .query_opt(
                "SELECT details FROM security_events WHERE partner_id = $1 AND event_type = $2 LIMIT 1",
                &[&partner, &event_type],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {event_type} security event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_receiver_verifies_every_signature_and_sees_each_insight_once_after_deduplication() {
    let (app, cipher) = local_app().await;
    let acme = app.partner("Acme").await;
    // The first request of each of the first two messages is processed but answered 500: the
    // receiver then gets those messages again (at least once), and deduplicates by id.
    let receiver = Receiver::start(|request, before| {
        let ids: BTreeSet<&str> = before.iter().map(|r| r.id.as_str()).collect();
        let first_time = !ids.contains(request.id.as_str());
        if first_time && ids.len() < 2 {
            Reply::Status(500)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let (_, secret) = create_webhook(
        &app,
        &acme.key,
        json!({"url": receiver.url(), "event_types": ["insight.created", "insight.updated"]}),
    )
    .await;

    let first = write_insight(&app, &acme, "page_view", json!({"title": "Spike", "n": 1})).await;
    let second = write_insight(&app, &acme, "signup", json!({"title": "Drop"})).await;
    let third = write_insight(&app, &acme, "purchase", json!({"title": "Calm"})).await;
    let spike = |n: i32, generated_at: &str| json!({"title": "Spike", "n": n, "generated_at": generated_at});
    let updated = write_insight(&app, &acme, "page_view", spike(2, "2026-11-30T10:00:00Z")).await;
    assert_eq!(updated, first, "the same subject is updated in place");
    // Recomputed with the same answer: refreshed, but no news for the receiver.
    let refreshed = write_insight(&app, &acme, "page_view", spike(2, "2026-11-30T11:00:00Z")).await;
    assert_eq!(refreshed, first);

    let outcomes = drain(
        &app,
        &worker(&app, &cipher, DeliveryOptions::default()),
        Utc::now(),
    )
    .await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Delivered)
            .count(),
        4
    );

    let seen = receiver.seen();
    assert_eq!(seen.len(), 6, "two messages were delivered twice");
    let mut messages: BTreeMap<String, Received> = BTreeMap::new();
    for request in &seen {
        assert!(
            request.verifies_with(&secret),
            "signature of {}",
            request.id
        );
        assert!(!request.verifies_with(&SigningSecret::generate()));
        let payload = request.payload();
        assert_eq!(
            payload["id"], request.id,
            "the payload carries the message id"
        );
        if let Some(earlier) = messages.get(&request.id) {
            assert_eq!(
                earlier.body, request.body,
                "a redelivery is the same message"
            );
        }
        messages.insert(request.id.clone(), request.clone());
    }
    let events: BTreeSet<(String, String)> = messages
        .values()
        .map(|m| {
            let payload = m.payload();
            (
                payload["type"].as_str().unwrap().to_owned(),
                payload["data"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("insight.created", &first),
        ("insight.created", &second),
        ("insight.created", &third),
        ("insight.updated", &first),
    ]
    .into_iter()
    .map(|(kind, id)| (kind.to_owned(), id.clone()))
    .collect();
    assert_eq!(
        events, expected,
        "every change exactly once after deduplication"
    );

    // The data is the insight exactly as the API returns it (latest versions compared).
    for message in messages.values() {
        let payload = message.payload();
        let id = payload["data"]["id"].as_str().unwrap();
        if payload["type"] == "insight.created" && id == first {
            assert_eq!(
                payload["data"]["content"]["n"], 1,
                "the version it announced"
            );
            continue;
        }
        let mut api: Value = app
            .get_with_key(&format!("/v1/insights/{id}"), &acme.key)
            .await
            .json()
            .await
            .unwrap();
        if id == first {
            // The quiet refresh moved only these two.
            assert_eq!(api["content"]["generated_at"], "2026-11-30T11:00:00Z");
            api["content"]["generated_at"] = json!("2026-11-30T10:00:00Z");
            api["updated_at"] = payload["data"]["updated_at"].clone();
        }
        assert_eq!(payload["data"], api);
    }
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_then_succeeds_gets_the_delivery_with_attempts_recorded()
{
    let (app, cipher) = local_app().await;
    let acme = app.partner("Acme").await;
    let receiver = Receiver::start(|_, before| match before.len() {
        0 => Reply::Status(500),
        1 => Reply::Status(503),
        2 => Reply::Status(302),
        _ => Reply::Status(200),
    })
    .await;
    let (webhook, secret) = create_webhook(&app, &acme.key, json!({"url": receiver.url()})).await;
    write_insight(&app, &acme, "page_view", json!({"title": "Spike"})).await;
    let worker = worker(&app, &cipher, DeliveryOptions::default());

    let start = Utc::now();
    let mut now = start;
    let expected_waits = [30.0, 90.0, 270.0];
    for wait in expected_waits {
        let Outcome::Retrying { at } = worker.run_one(now).await.unwrap() else {
            panic!("the attempt should fail and be retried");
        };
        let waited = (at - now).as_seconds_f64();
        assert!(
            (wait * 0.8..=wait * 1.2).contains(&waited),
            "retry after {waited} s, expected {wait} s ± 20 %"
        );
        assert_eq!(
            worker
                .run_one(at - chrono::Duration::seconds(1))
                .await
                .unwrap(),
            Outcome::Empty,
            "nothing is sent before the backoff has passed"
        );
        now = at;
    }
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Delivered);
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Empty);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|r| r.id == seen[0].id && r.verifies_with(&secret))
    );
    let list = deliveries(&app, &acme.key, &webhook).await;
    assert_eq!(list.len(), 1);
    let delivery = &list[0];
    assert_eq!(delivery["status"], "succeeded");
    assert_eq!(delivery["attempts"], 4);
    assert_eq!(delivery["max_attempts"], 10);
    assert_eq!(delivery["response_status"], 200);
    assert!(delivery["latency_ms"].as_i64().unwrap() >= 0);
    assert_eq!(delivery["message_id"], seen[0].id);
    assert_eq!(delivery["event_type"], "insight.created");
    assert!(delivery["next_attempt_at"].is_null());
    let statuses: Vec<i64> = delivery["attempt_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 503, 302, 200], "a redirect is not followed");
    assert_eq!(
        delivery["attempt_history"][2]["error"],
        "the receiver answered 302"
    );
    assert!(delivery["attempt_history"][3]["error"].is_null());
}

#[tokio::test]
async fn a_delivery_that_always_fails_dies_after_about_a_day_and_is_a_security_event() {
    let (app, cipher) = local_app().await;
    let acme = app.partner("Acme").await;
    let receiver = Receiver::start(|_, _| Reply::Status(500)).await;
    let (webhook, _) = create_webhook(&app, &acme.key, json!({"url": receiver.url()})).await;
    write_insight(&app, &acme, "page_view", json!({"title": "Spike"})).await;

    let start = Utc::now();
    let outcomes = drain(
        &app,
        &worker(&app, &cipher, DeliveryOptions::default()),
        start,
    )
    .await;
    assert_eq!(outcomes.len(), 10);
    assert_eq!(outcomes.last(), Some(&Outcome::Dead));
    assert_eq!(receiver.seen().len(), 10);

    let delivery = &deliveries(&app, &acme.key, &webhook).await[0];
    assert_eq!(delivery["status"], "dead");
    assert_eq!(delivery["attempts"], 10);
    let history = delivery["attempt_history"].as_array().unwrap();
    let at = |i: usize| {
        history[i]["at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    let span = (at(9) - at(0)).num_minutes();
    assert!(
        (19 * 60..=31 * 60).contains(&span),
        "the last attempt came {span} minutes after the first"
    );
    let details = security_event(&app, acme.partner_id, "webhook_delivery_dead").await;
    assert_eq!(details["webhook_id"], webhook.as_str());
    assert_eq!(details["attempts"], 10);
}

#[tokio::test]
async fn a_webhook_failing_for_days_is_switched_off_and_what_waited_is_cancelled() {
    let (app, cipher) = local_app().await;
    let acme = app.partner("Acme").await;
    let receiver = Receiver::start(|_, _| Reply::Status(500)).await;
    let (webhook, _) = create_webhook(&app, &acme.key, json!({"url": receiver.url()})).await;
    let worker = worker(&app, &cipher, DeliveryOptions::default());

    write_insight(&app, &acme, "page_view", json!({"title": "one"})).await;
    let start = Utc::now();
    assert!(matches!(
        worker.run_one(start).await.unwrap(),
        Outcome::Retrying { .. }
    ));
    // Days later, another insight, still failing.
    let later = start + chrono::Duration::days(5) + chrono::Duration::minutes(1);
    write_insight(&app, &acme, "signup", json!({"title": "two"})).await;
    loop {
        match worker.run_one(later).await.unwrap() {
            Outcome::Retrying { .. } | Outcome::Dead => {}
            Outcome::Empty => break,
            other => panic!("{other:?}"),
        }
    }
    let hook: Value = app
        .get_with_key("/v1/webhooks", &acme.key)
        .await
        .json::<Value>()
        .await
        .unwrap()["data"][0]
        .clone();
    assert_eq!(hook["enabled"], false);
    assert_eq!(hook["disabled_reason"], "failing");
    let states: Vec<Value> = deliveries(&app, &acme.key, &webhook)
        .await
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert!(states.iter().all(|s| s == "cancelled"), "{states:?}");
    security_event(&app, acme.partner_id, "webhook_disabled").await;

    // Nothing is sent to a switched-off webhook, until it is switched on again.
    write_insight(&app, &acme, "purchase", json!({"title": "three"})).await;
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Empty);
    let response = app
        .client
        .patch(app.url(&format!("/v1/webhooks/{webhook}")))
        .header("apikey", &acme.key)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let hook: Value = response.json().await.unwrap();
    assert_eq!(hook["enabled"], true);
    assert!(hook["disabled_reason"].is_null() && hook["failing_since"].is_null());
}

#[tokio::test]
async fn a_hanging_receiver_does_not_hold_up_other_partners_deliveries() {
    let (app, cipher) = local_app().await;
    let stuck = app.partner("Stuck").await;
    let fine = app.partner("Fine").await;
    let mut hanging = Receiver::start(|_, _| Reply::Hang).await;
    let healthy = Receiver::start(|_, _| Reply::Status(200)).await;
    let (stuck_hook, _) = create_webhook(&app, &stuck.key, json!({"url": hanging.url()})).await;
    let (fine_hook, fine_secret) =
        create_webhook(&app, &fine.key, json!({"url": healthy.url()})).await;
    // The stuck partner's messages are older, so they come first in the queue.
    for _ in 0..3 {
        let queued = app
            .post_json(
                &format!("/v1/webhooks/{stuck_hook}/test"),
                &stuck.key,
                &json!({}),
            )
            .await;
        assert_eq!(queued.status(), 202);
    }
    let queued = app
        .post_json(
            &format!("/v1/webhooks/{fine_hook}/test"),
            &fine.key,
            &json!({}),
        )
        .await;
    assert_eq!(queued.status(), 202);

    let options = DeliveryOptions {
        per_webhook: 1,
        per_partner: 1,
        ..DeliveryOptions::default()
    };
    let stuck_worker = Arc::new(worker_with_timeout(
        &app,
        &cipher,
        options,
        Duration::from_secs(3),
    ));
    let now = Utc::now();
    let in_flight = tokio::spawn({
        let worker = stuck_worker.clone();
        async move { worker.run_one(now).await.unwrap() }
    });
    tokio::time::timeout(Duration::from_secs(10), hanging.arrivals.recv())
        .await
        .expect("the hanging receiver got its request")
        .unwrap();

    // While that attempt hangs, another worker skips the stuck partner's other messages (its
    // endpoint is at its limit) and delivers the other partner's.
    let other = worker(&app, &cipher, options);
    assert_eq!(other.run_one(now).await.unwrap(), Outcome::Delivered);
    assert!(
        !in_flight.is_finished(),
        "the stuck attempt is still hanging"
    );
    let seen = healthy.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].verifies_with(&fine_secret));
    assert_eq!(other.run_one(now).await.unwrap(), Outcome::Empty);

    // The hanging attempt ends at its timeout, as a failure (a test message is tried once).
    assert_eq!(in_flight.await.unwrap(), Outcome::Dead);
    let failed = &deliveries(&app, &stuck.key, &stuck_hook).await;
    let dead: Vec<&Value> = failed.iter().filter(|d| d["status"] == "dead").collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["response_status"].is_null());
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("no complete answer within 3 s"),
        "{}",
        dead[0]["error"]
    );
}

#[tokio::test]
async fn urls_at_private_addresses_are_refused_at_creation() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://10.255.1.1:8443/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://192.168.1.10/",
        "https://100.64.0.1/",
    ] {
        let response = app
            .post_json("/v1/webhooks", &acme.key, &json!({"url": url}))
            .await;
        let body = problem(response, 400, "validation/url-not-allowed").await;
        assert_eq!(body["errors"][0]["field"], "url", "{url}");
        assert!(!body.to_string().contains(url), "the URL is not echoed");
    }
    let plain = app
        .post_json(
            "/v1/webhooks",
            &acme.key,
            &json!({"url": "http://hooks.example.com/"}),
        )
        .await;
    let body = problem(plain, 400, "validation/url-not-allowed").await;
    assert!(body["detail"].as_str().unwrap().contains("https"));
    for malformed in [
        "not a url",
        "ftp://files.example.com/",
        "https://user:pw@example.com/",
    ] {
        let response = app
            .post_json("/v1/webhooks", &acme.key, &json!({"url": malformed}))
            .await;
        assert_eq!(response.status(), 400, "{malformed}");
    }
    assert_eq!(app.count_rows("webhooks", acme.partner_id).await, 0);
    let details = security_event(&app, acme.partner_id, "webhook_url_refused").await;
    assert!(details["host"].is_string());

    // An existing webhook cannot be moved to a private address either.
    let public = app
        .post_json(
            "/v1/webhooks",
            &acme.key,
            &json!({"url": "https://8.8.8.8/hook"}),
        )
        .await;
    assert_eq!(public.status(), 201);
    let id = public.json::<Value>().await.unwrap()["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved = app
        .client
        .patch(app.url(&format!("/v1/webhooks/{id}")))
        .header("apikey", &acme.key)
        .json(&json!({"url": "https://169.254.169.254/"}))
        .send()
        .await
        .unwrap();
    problem(moved, 400, "validation/url-not-allowed").await;
}

#[tokio::test]
async fn rotation_keeps_deliveries_verifiable_during_the_grace_period_and_the_old_secret_fails_after()
 {
    let (app, cipher) = local_app().await;
    let acme = app.partner("Acme").await;
    let receiver = Receiver::start(|_, _| Reply::Status(200)).await;
    let (webhook, old) = create_webhook(&app, &acme.key, json!({"url": receiver.url()})).await;
    let rotated = app
        .post_json(
            &format!("/v1/webhooks/{webhook}/rotate-secret"),
            &acme.key,
            &json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new = SigningSecret::parse(rotated["secret"].as_str().unwrap()).unwrap();
    assert_ne!(new, old);
    let grace_ends: DateTime<Utc> = rotated["webhook"]["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let worker = worker(&app, &cipher, DeliveryOptions::default());
    let test = |key: String| {
        let app = &app;
        let webhook = webhook.clone();
        async move {
            let response = app
                .post_json(&format!("/v1/webhooks/{webhook}/test"), &key, &json!({}))
                .await;
            assert_eq!(response.status(), 202);
        }
    };

    test(acme.key.clone()).await;
    assert_eq!(
        worker.run_one(Utc::now()).await.unwrap(),
        Outcome::Delivered
    );
    test(acme.key.clone()).await;
    let after_grace = grace_ends + chrono::Duration::seconds(1);
    assert_eq!(
        worker.run_one(after_grace).await.unwrap(),
        Outcome::Delivered
    );

    let seen = receiver.seen();
    let (during, after) = (&seen[0], &seen[1]);
    assert_eq!(during.signature.split(' ').count(), 2);
    assert!(during.verifies_with(&new) && during.verifies_with(&old));
    assert_eq!(during.payload()["type"], "webhook.test");
    assert_eq!(after.signature.split(' ').count(), 1);
    assert!(after.verifies_with(&new));
    assert!(!after.verifies_with(&old), "the old secret no longer signs");
    security_event(&app, acme.partner_id, "webhook_secret_rotated").await;
}

#[tokio::test]
async fn another_partner_cannot_see_or_change_a_webhook_or_its_deliveries() {
    let app = TestApp::spawn().await;
    let a = app.partner("A").await;
    let b = app.partner("B").await;
    let response = app
        .post_json(
            "/v1/webhooks",
            &a.key,
            &json!({"url": "https://8.8.8.8/a", "description": "A's endpoint"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let queued = app
        .post_json(&format!("/v1/webhooks/{id}/test"), &a.key, &json!({}))
        .await;
    assert_eq!(queued.status(), 202);

    let listed: Value = app
        .get_with_key("/v1/webhooks", &b.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]));
    let path = format!("/v1/webhooks/{id}");
    let attempts = [
        app.client
            .patch(app.url(&path))
            .json(&json!({"enabled": false})),
        app.client.delete(app.url(&path)),
        app.client
            .post(app.url(&format!("{path}/rotate-secret")))
            .json(&json!({})),
        app.client
            .post(app.url(&format!("{path}/test")))
            .json(&json!({})),
        app.client.get(app.url(&format!("{path}/deliveries"))),
    ];
    for attempt in attempts {
        let response = attempt.header("apikey", &b.key).send().await.unwrap();
        problem(response, 404, "not-found").await;
    }
    let details = security_event(&app, b.partner_id, "cross_tenant_access").await;
    assert_eq!(details["resource"], "webhook");

    let own: Value = app
        .get_with_key("/v1/webhooks", &a.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["data"][0]["enabled"], true);
    assert_eq!(own["data"][0]["description"], "A's endpoint");
    assert_eq!(
        deliveries(&app, &a.key, &id).await.len(),
        1,
        "A's test is still queued"
    );

    // Row-level security is the second wall: B's own transaction sees none of A's rows.
    let store = app.db.store();
    let (hooks, visible) = store
        .as_user(b.user_id, async |t| {
            let hooks = t.webhooks().await?;
            let deliveries = t
                .webhook_deliveries(uuid::Uuid::parse_str(&id).unwrap(), None, 100)
                .await?;
            Ok((hooks, deliveries))
        })
        .await
        .unwrap();
    assert!(hooks.is_empty() && visible.is_empty());
}

#[tokio::test]
async fn webhook_requests_are_validated_and_secrets_stay_out_of_the_logs() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let cases = [
        json!({"url": "https://8.8.8.8/", "event_types": ["insight.deleted"]}),
        json!({"url": "https://8.8.8.8/", "event_types": []}),
        json!({"url": "https://8.8.8.8/", "event_types": ["webhook.test"]}),
        json!({"url": "https://8.8.8.8/", "unknown": 1}),
        json!({"url": "https://8.8.8.8/", "description": "x".repeat(201)}),
        json!({"url": 42}),
        json!({}),
    ];
    for body in cases {
        let response = app.post_json("/v1/webhooks", &acme.key, &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let created = app
        .post_json(
            "/v1/webhooks",
            &acme.key,
            &json!({"url": "https://8.8.8.8/", "event_types": ["api_key.expiring", "insight.created", "insight.created"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["webhook"]["event_types"],
        json!(["insight.created", "api_key.expiring"])
    );
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["webhook"]["id"].as_str().unwrap();
    for (limit, status) in [("0", 400), ("101", 400), ("abc", 400), ("5", 200)] {
        let response = app
            .get_with_key(
                &format!("/v1/webhooks/{id}/deliveries?limit={limit}"),
                &acme.key,
            )
            .await;
        assert_eq!(response.status(), status, "limit {limit}");
    }
    let rotate = app
        .post_json(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &acme.key,
            &json!({"grace_seconds": 604_801}),
        )
        .await;
    problem(rotate, 400, "validation/invalid-request").await;
    problem(
        app.get_with_key("/v1/webhooks/not-a-uuid/deliveries", &acme.key)
            .await,
        404,
        "not-found",
    )
    .await;

    // The secret is in the response only: not in the request log, not in the table.
    let admin = app.db.admin().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let logged: i64 = admin
            .query_one(
                "SELECT count(*) FROM logs WHERE partner_id = $1 AND endpoint = '/v1/webhooks' AND status = 201",
                &[&acme.partner_id],
            )
            .await
            .unwrap()
            .get(0);
        if logged > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request was logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leaked: i64 = admin
        .query_one(
            "SELECT count(*) FROM logs WHERE response_body::text LIKE '%whsec_%' OR request_body::text LIKE '%whsec_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
    let raw = &secret["whsec_".len()..];
    let stored: i64 = admin
        .query_one(
            "SELECT count(*) FROM webhooks WHERE encode(secret_ciphertext, 'base64') LIKE '%' || $1 || '%' OR url LIKE '%' || $1 || '%'",
            &[&raw],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "only the sealed secret is stored");
}

#[tokio::test]
async fn the_portal_adds_a_webhook_shows_its_secret_once_and_follows_its_deliveries() {
    use crate::portal_pages::{csrf_of, no_redirects, sign_up};

    let (app, cipher) = local_app().await;
    let client = no_redirects();
    let session = sign_up(&app, &client, "hooks@example.com").await;
    let get = |path: String| {
        let request = client.get(app.url(&path)).header("cookie", &session);
        async move { request.send().await.unwrap() }
    };
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let request = client
            .post(app.url(&path))
            .header("cookie", &session)
            .form(&form);
        async move { request.send().await.unwrap() }
    };
    let page = get("/portal/webhooks".into()).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("No webhooks yet.") && html.contains("href=\"/portal/webhooks\""));
    let csrf = csrf_of(&html);

    let refused = post(
        "/portal/webhooks".into(),
        vec![
            ("csrf", csrf.clone()),
            ("url", "http://example.com/hook".into()),
            ("insight_created", "on".into()),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("url must use https"));
    let forged = post(
        "/portal/webhooks".into(),
        vec![("url", "http://127.0.0.1:9/hook".into())],
    )
    .await;
    assert_eq!(forged.status(), 403);

    let receiver = Receiver::start(|_, _| Reply::Status(200)).await;
    let added = post(
        "/portal/webhooks".into(),
        vec![
            ("csrf", csrf.clone()),
            ("url", receiver.url()),
            ("description", "Order system".into()),
            ("insight_created", "on".into()),
        ],
    )
    .await;
    assert_eq!(added.status(), 200);
    let html = added.text().await.unwrap();
    let start = html
        .find("id=\"new-secret\">")
        .expect("the secret is shown")
        + 16;
    let secret = SigningSecret::parse(html[start..].split('<').next().unwrap()).unwrap();
    let start = html.find("href=\"/portal/webhooks/").unwrap() + 23;
    let id = html[start..].split('"').next().unwrap().to_owned();

    let listed = get("/portal/webhooks".into()).await.text().await.unwrap();
    assert!(listed.contains(&receiver.url()) && listed.contains("Order system"));
    assert!(!listed.contains("whsec_"), "the secret is shown only once");

    let tested = post(
        format!("/portal/webhooks/{id}/test"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(tested.status(), 200);
    assert!(
        tested
            .text()
            .await
            .unwrap()
            .contains("A test message is on its way")
    );
    let worker = worker(&app, &cipher, DeliveryOptions::default());
    assert_eq!(
        worker.run_one(Utc::now()).await.unwrap(),
        Outcome::Delivered
    );
    assert!(receiver.seen()[0].verifies_with(&secret));
    let detail = get(format!("/portal/webhooks/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("<td class=\"status\">succeeded</td>"),
        "{detail}"
    );
    assert!(detail.contains("webhook.test") && detail.contains("1 of 1"));

    let switched_off = post(
        format!("/portal/webhooks/{id}"),
        vec![
            ("csrf", csrf.clone()),
            ("url", receiver.url()),
            ("insight_updated", "on".into()),
        ],
    )
    .await;
    assert_eq!(switched_off.status(), 200);
    let html = switched_off.text().await.unwrap();
    assert!(html.contains("Saved.") && html.contains("id=\"webhook-status\">Off<"));

    let rotated = post(
        format!("/portal/webhooks/{id}/rotate-secret"),
        vec![("csrf", csrf.clone())],
    )
    .await
    .text()
    .await
    .unwrap();
    let start = rotated.find("id=\"new-secret\">").unwrap() + 16;
    let new = SigningSecret::parse(rotated[start..].split('<').next().unwrap()).unwrap();
    assert_ne!(new, secret);

    let deleted = post(
        format!("/portal/webhooks/{id}/delete"),
        vec![("csrf", csrf)],
    )
    .await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(deleted.headers()["location"], "/portal/webhooks");
    let listed = get("/portal/webhooks".into()).await.text().await.unwrap();
    assert!(listed.contains("No webhooks yet."));
}

#[tokio::test]
async fn a_key_about_to_expire_is_announced_once_to_subscribed_webhooks() {
    let (app, cipher) = local_app().await;
    let acme = app.partner("Acme").await;
    let quiet = app.partner("Quiet").await;
    let receiver = Receiver::start(|_, _| Reply::Status(200)).await;
    let (_, secret) = create_webhook(
        &app,
        &acme.key,
        json!({"url": receiver.url(), "event_types": ["api_key.expiring"]}),
    )
    .await;
    create_webhook(&app, &quiet.key, json!({"url": receiver.url()})).await;
    let admin = app.db.admin().await;
    for partner in [acme.partner_id, quiet.partner_id] {
        admin
            .execute(
                "UPDATE api_keys SET expires_at = now() + interval '3 days' WHERE partner_id = $1",
                &[&partner],
            )
            .await
            .unwrap();
    }
    let upkeep = epai_webhooks::DeliveryUpkeep::new(
        app.db.store(),
        epai_webhooks::DeliveryUpkeep::DEFAULT_RETENTION,
    );
    let now = Utc::now();
    assert_eq!(upkeep.run_one(now).await.unwrap().keys_announced, 1);
    assert_eq!(
        upkeep.run_one(now).await.unwrap().keys_announced,
        0,
        "announced once"
    );
    let worker = worker(&app, &cipher, DeliveryOptions::default());
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Delivered);
    assert_eq!(worker.run_one(now).await.unwrap(), Outcome::Empty);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "only the subscribed partner hears of it");
    assert!(seen[0].verifies_with(&secret));
    let payload = seen[0].payload();
    assert_eq!(payload["type"], "api_key.expiring");
    let prefix: Option<String> = admin
        .query_one(
            "SELECT key_prefix FROM api_keys WHERE partner_id = $1",
            &[&acme.partner_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload["data"]["api_key"]["key_prefix"], json!(prefix));
    assert!(!seen[0].body.contains(&acme.key), "never the key itself");
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_at_connection_time_is_refused() {
    // The server accepted the URL (its operator allowed private targets then); the workers'
    // policy does not: the address is checked again when connecting, as after DNS rebinding.
    let cipher = Arc::new(SecretCipher::generate());
    let lenient = UrlPolicy {
        allow_private: true,
        http_hosts: vec!["localhost".into()],
    };
    let settings = ServerSettings {
        webhooks: WebhookSettings {
            cipher: cipher.clone(),
            policy: lenient,
            ..WebhookSettings::default()
        },
        ..ServerSettings::default()
    };
    let app = TestApp::spawn_with(TestDatabase::migrated().await, settings).await;
    let acme = app.partner("Acme").await;
    let receiver = Receiver::start(|_, _| Reply::Status(200)).await;
    let url = format!("http://localhost:{}/hook", receiver.address.port());
    let (webhook, _) = create_webhook(&app, &acme.key, json!({"url": url})).await;
    let queued = app
        .post_json(
            &format!("/v1/webhooks/{webhook}/test"),
            &acme.key,
            &json!({}),
        )
        .await;
    assert_eq!(queued.status(), 202);

    let strict = UrlPolicy {
        allow_private: false,
        http_hosts: vec!["localhost".into()],
    };
    let sender = Sender::new(strict, SendOptions::default()).unwrap();
    let worker = DeliveryWorker::new(app.db.store(), sender, cipher, DeliveryOptions::default());
    assert_eq!(worker.run_one(Utc::now()).await.unwrap(), Outcome::Dead);
    assert!(receiver.seen().is_empty(), "no request reached the address");
    let delivery = &deliveries(&app, &acme.key, &webhook).await[0];
    assert!(
        delivery["error"]
            .as_str()
            .unwrap()
            .starts_with("refused: url points to a loopback"),
        "{}",
        delivery["error"]
    );
    let details = security_event(&app, acme.partner_id, "webhook_address_refused").await;
    assert_eq!(details["webhook_id"], webhook.as_str());
}
