//! Tenant isolation at scale: many partners, a seeded random interleaving of writes and reads
//! through every partner endpoint (and its original alias), with API keys, portal sessions and
//! embed tokens. No response may carry another partner's ids or data, and every attempt to use
//! another partner's id is a 404 recorded as a `cross_tenant_access` security event.
//!
//! The seed is printed; `EPAI_ISOLATION_SEED=<seed>` replays a run.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use epai_domain::{AuthUserId, SessionId};
use epai_server::rate_limit::Quota;
use epai_server::{ServerSettings, SessionClaims, WebhookSettings};
use epai_store::testing::TestDatabase;
use epai_webhooks::UrlPolicy;
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, partner_on};

const PARTNERS: usize = 20;
const OPERATIONS: usize = 900;
/// Requests in flight at once, each for a different partner.
const WAVE: usize = 8;

/// One partner as the test knows it: its credentials and everything that identifies its data.
struct Tenant {
    key: String,
    session: String,
    partner_id: Uuid,
    user_id: AuthUserId,
    /// A string planted in every event and insight of this partner only.
    marker: String,
    insights: Vec<Uuid>,
    webhooks: Vec<Uuid>,
    events: Vec<Uuid>,
    logs: Vec<Uuid>,
    /// Other partners' ids this partner has asked for itself (its own request log repeats them).
    probed: HashSet<String>,
}

impl Tenant {
    /// Every text that would betray this partner's data in someone else's response.
    fn identifiers(&self) -> Vec<String> {
        let ids = [self.partner_id, self.user_id.as_uuid()]
            .into_iter()
            .chain(self.insights.iter().copied())
            .chain(self.webhooks.iter().copied())
            .chain(self.events.iter().copied())
            .chain(self.logs.iter().copied());
        ids.flat_map(|id| [id.to_string(), id.simple().to_string()])
            .chain([self.marker.clone()])
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    Key,
    Session,
}

/// What one step of the run does.
#[derive(Clone, Debug)]
enum Step {
    PostEvent(&'static str),
    PostBatch,
    ListEvents(Credential),
    ListInsights(Credential),
    OwnInsight(Credential, Uuid),
    OriginalInsights,
    OriginalPublicInsight(Uuid),
    Logs(Credential),
    OriginalLogs,
    Usage(Credential),
    OriginalUsage,
    KeyStatus,
    OriginalKeyStatus,
    RegenerateKey,
    Models,
    MintEmbedAndRead,
    ListWebhooks(Credential),
    CreateWebhook(Credential),
    RotateOwnSecret(Uuid),
    OwnDeliveries(Uuid),
    Predict(Credential),
    OriginalPredict,
    /// Another partner's id, through each way of naming an insight.
    ForeignInsight(Credential, Uuid),
    ForeignPublicInsight(Uuid),
    ForeignEmbedScope(Uuid),
    ForeignInsightWithEmbed(Uuid),
    ForeignPortalInsight(Uuid),
    ForeignPortalLog(Uuid),
    /// Another partner's webhook, through each webhook endpoint.
    ForeignWebhook(&'static str, Uuid),
}

impl Step {
    /// The foreign id this step asks for, if it is a cross-tenant attempt.
    fn foreign_id(&self) -> Option<Uuid> {
        match self {
            Step::ForeignInsight(_, id)
            | Step::ForeignPublicInsight(id)
            | Step::ForeignEmbedScope(id)
            | Step::ForeignInsightWithEmbed(id)
            | Step::ForeignPortalInsight(id)
            | Step::ForeignPortalLog(id)
            | Step::ForeignWebhook(_, id) => Some(*id),
            _ => None,
        }
    }
}

/// A step bound to its partner's credentials at the time it was planned.
struct Planned {
    tenant: usize,
    key: String,
    session: String,
    marker: String,
    step: Step,
}

/// What a step's responses were, and what it created.
#[derive(Default)]
struct Outcome {
    /// `(request, status, body)` of every response the step got.
    responses: Vec<(String, u16, String)>,
    events: Vec<Uuid>,
    webhook: Option<Uuid>,
    new_key: Option<String>,
}

impl Outcome {
    fn record(&mut self, request: impl Into<String>, status: u16, body: String) -> Value {
        let parsed = serde_json::from_str(&body).unwrap_or(Value::Null);
        self.responses.push((request.into(), status, body));
        parsed
    }
}

struct Run<'a> {
    app: &'a TestApp,
}

impl Run<'_> {
    async fn send(
        &self,
        out: &mut Outcome,
        method: Method,
        path: &str,
        auth: (&str, &str),
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .app
            .client
            .request(method.clone(), self.app.url(path))
            .header(auth.0, auth.1);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = out.record(format!("{method} {path}"), status, text);
        (status, value)
    }

    async fn as_(
        &self,
        out: &mut Outcome,
        plan: &Planned,
        credential: Credential,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let bearer = format!("Bearer {}", plan.session);
        let auth = match credential {
            Credential::Key => ("apikey", plan.key.as_str()),
            Credential::Session => ("authorization", bearer.as_str()),
        };
        self.send(out, method, path, auth, body).await
    }

    async fn embed_token(&self, out: &mut Outcome, plan: &Planned) -> String {
        let (status, token) = self
            .as_(
                out,
                plan,
                Credential::Key,
                Method::POST,
                "/v1/embed-tokens",
                None,
            )
            .await;
        assert_eq!(status, 201, "{token}");
        token["token"].as_str().unwrap().to_owned()
    }

    async fn execute(&self, plan: &Planned) -> Outcome {
        use Credential::{Key, Session};
        let mut out = Outcome::default();
        let event = |n: usize| {
            json!({"event_type": "page_view", "data": {"marker": plan.marker, "n": n},
                   "metadata": {"source_marker": plan.marker}})
        };
        let expect = |status: u16, allowed: &[u16], body: &Value| {
            assert!(
                allowed.contains(&status),
                "{:?} answered {status}: {body}",
                plan.step
            );
        };
        match &plan.step {
            Step::PostEvent(path) => {
                let body = if *path == "/ingest-v2" {
                    json!({"eventType": "page_view", "payload": {"marker": plan.marker}})
                } else {
                    event(0)
                };
                let (status, answer) = self
                    .as_(&mut out, plan, Key, Method::POST, path, Some(body))
                    .await;
                expect(status, &[201, 202], &answer);
                let id = answer.get("id").or_else(|| answer.get("eventId"));
                out.events
                    .push(id.and_then(Value::as_str).unwrap().parse().unwrap());
            }
            Step::PostBatch => {
                let events: Vec<Value> = (0..3).map(event).collect();
                let (status, answer) = self
                    .as_(
                        &mut out,
                        plan,
                        Key,
                        Method::POST,
                        "/v1/events/batch",
                        Some(json!({ "events": events })),
                    )
                    .await;
                expect(status, &[202], &answer);
                for id in answer["ids"].as_array().unwrap() {
                    out.events.push(id.as_str().unwrap().parse().unwrap());
                }
            }
            Step::ListEvents(credential) => {
                let (status, page) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::GET,
                        "/v1/events?limit=100",
                        None,
                    )
                    .await;
                expect(status, &[200], &page);
                for event in page["data"].as_array().unwrap() {
                    assert_eq!(event["data"]["marker"], plan.marker, "{event}");
                }
            }
            Step::ListInsights(credential) => {
                let (status, page) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::GET,
                        "/v1/insights?limit=100",
                        None,
                    )
                    .await;
                expect(status, &[200], &page);
                for insight in page["data"].as_array().unwrap() {
                    assert_eq!(insight["content"]["marker"], plan.marker, "{insight}");
                }
            }
            Step::OwnInsight(credential, id) => {
                let path = format!("/v1/insights/{id}");
                let (status, insight) = self
                    .as_(&mut out, plan, *credential, Method::GET, &path, None)
                    .await;
                expect(status, &[200], &insight);
                assert_eq!(insight["content"]["marker"], plan.marker);
            }
            Step::OriginalInsights => {
                let (status, page) = self
                    .as_(
                        &mut out,
                        plan,
                        Key,
                        Method::GET,
                        "/get-insights?limit=100",
                        None,
                    )
                    .await;
                expect(status, &[200], &page);
            }
            Step::OriginalPublicInsight(id) => {
                let body = json!({ "insight_id": id.to_string() });
                let (status, answer) = self
                    .as_(
                        &mut out,
                        plan,
                        Key,
                        Method::POST,
                        "/get-public-insight",
                        Some(body),
                    )
                    .await;
                expect(status, &[200], &answer);
                assert_eq!(answer["insight"]["content"]["marker"], plan.marker);
            }
            Step::Logs(credential) => {
                let (status, page) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::GET,
                        "/v1/logs?limit=1000",
                        None,
                    )
                    .await;
                expect(status, &[200], &page);
            }
            Step::OriginalLogs => {
                let (status, page) = self
                    .as_(
                        &mut out,
                        plan,
                        Session,
                        Method::POST,
                        "/get-partner-logs",
                        Some(json!({})),
                    )
                    .await;
                expect(status, &[200], &page);
            }
            Step::Usage(credential) => {
                let (status, usage) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::GET,
                        "/v1/usage?days=7",
                        None,
                    )
                    .await;
                expect(status, &[200], &usage);
            }
            Step::OriginalUsage => {
                let (status, usage) = self
                    .as_(
                        &mut out,
                        plan,
                        Session,
                        Method::POST,
                        "/get-usage-stats",
                        None,
                    )
                    .await;
                expect(status, &[200], &usage);
            }
            Step::KeyStatus => {
                let (status, key) = self
                    .as_(&mut out, plan, Session, Method::GET, "/v1/api-key", None)
                    .await;
                expect(status, &[200], &key);
                assert!(plan.key.starts_with(key["key_prefix"].as_str().unwrap()));
            }
            Step::OriginalKeyStatus => {
                let (status, key) = self
                    .as_(
                        &mut out,
                        plan,
                        Session,
                        Method::GET,
                        "/api-key-manager",
                        None,
                    )
                    .await;
                expect(status, &[200], &key);
            }
            Step::RegenerateKey => {
                let (status, key) = self
                    .as_(&mut out, plan, Session, Method::POST, "/v1/api-key", None)
                    .await;
                expect(status, &[201], &key);
                out.new_key = Some(key["api_key"].as_str().unwrap().to_owned());
            }
            Step::Models => {
                let (status, models) = self
                    .as_(&mut out, plan, Key, Method::GET, "/v1/models", None)
                    .await;
                expect(status, &[200], &models);
            }
            Step::MintEmbedAndRead => {
                let token = self.embed_token(&mut out, plan).await;
                let auth = format!("Bearer {token}");
                let (status, page) = self
                    .send(
                        &mut out,
                        Method::GET,
                        "/v1/insights",
                        ("authorization", &auth),
                        None,
                    )
                    .await;
                expect(status, &[200], &page);
                for insight in page["data"].as_array().unwrap() {
                    assert_eq!(insight["content"]["marker"], plan.marker, "{insight}");
                }
                // An embed token reads insights and nothing else.
                let (status, refused) = self
                    .send(
                        &mut out,
                        Method::GET,
                        "/v1/events",
                        ("authorization", &auth),
                        None,
                    )
                    .await;
                expect(status, &[403], &refused);
            }
            Step::ListWebhooks(credential) => {
                let (status, list) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::GET,
                        "/v1/webhooks",
                        None,
                    )
                    .await;
                expect(status, &[200], &list);
                for webhook in list["data"].as_array().unwrap() {
                    assert!(webhook["url"].as_str().unwrap().contains(&plan.marker));
                }
            }
            Step::CreateWebhook(credential) => {
                let body = json!({"url": format!("http://127.0.0.1:9/{}", plan.marker)});
                let (status, created) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::POST,
                        "/v1/webhooks",
                        Some(body),
                    )
                    .await;
                expect(status, &[201, 409], &created);
                if status == 201 {
                    out.webhook = Some(created["webhook"]["id"].as_str().unwrap().parse().unwrap());
                }
            }
            Step::RotateOwnSecret(id) => {
                let path = format!("/v1/webhooks/{id}/rotate-secret");
                let (status, rotated) = self
                    .as_(&mut out, plan, Key, Method::POST, &path, None)
                    .await;
                expect(status, &[200], &rotated);
            }
            Step::OwnDeliveries(id) => {
                let test = format!("/v1/webhooks/{id}/test");
                let (status, queued) = self
                    .as_(&mut out, plan, Session, Method::POST, &test, None)
                    .await;
                expect(status, &[202], &queued);
                let path = format!("/v1/webhooks/{id}/deliveries");
                let (status, page) = self
                    .as_(&mut out, plan, Key, Method::GET, &path, None)
                    .await;
                expect(status, &[200], &page);
            }
            Step::Predict(credential) => {
                let series: Vec<Value> = (1..=28)
                    .map(|day| json!({"date": format!("2026-10-{day:02}"), "value": 10 + day % 7}))
                    .collect();
                let (status, prediction) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::POST,
                        "/v1/models/event_volume_forecast/predict",
                        Some(json!({ "series": series, "horizon": 7 })),
                    )
                    .await;
                expect(status, &[200], &prediction);
                let form = json!({"engagementScore": 50, "previousPurchases": 1, "websiteVisits": 3,
                                  "emailOpens": 2, "socialMediaEngagement": 4});
                let (status, lead) = self
                    .as_(
                        &mut out,
                        plan,
                        *credential,
                        Method::POST,
                        "/v1/models/lead_scoring/predict",
                        Some(form),
                    )
                    .await;
                // Too few of this partner's own leads to learn from: refused, not borrowed.
                expect(status, &[200, 422], &lead);
            }
            Step::OriginalPredict => {
                let form = json!({"modelType": "attendance_forecast", "venue": "Hall",
                                  "eventDate": "2026-12-24", "genre": "jazz", "ticketPrice": 20,
                                  "marketingBudget": 500, "venueCapacity": 300});
                let (status, answer) = self
                    .as_(&mut out, plan, Key, Method::POST, "/predict", Some(form))
                    .await;
                expect(status, &[200, 422], &answer);
            }
            Step::ForeignInsight(credential, id) => {
                let path = format!("/v1/insights/{id}");
                let (status, answer) = self
                    .as_(&mut out, plan, *credential, Method::GET, &path, None)
                    .await;
                expect(status, &[404], &answer);
            }
            Step::ForeignPublicInsight(id) => {
                let body = json!({ "insight_id": id.to_string() });
                let (status, answer) = self
                    .as_(
                        &mut out,
                        plan,
                        Key,
                        Method::POST,
                        "/get-public-insight",
                        Some(body),
                    )
                    .await;
                expect(status, &[404], &answer);
            }
            Step::ForeignEmbedScope(id) => {
                let body = json!({ "insight_id": id });
                let (status, answer) = self
                    .as_(
                        &mut out,
                        plan,
                        Session,
                        Method::POST,
                        "/v1/embed-tokens",
                        Some(body),
                    )
                    .await;
                expect(status, &[404], &answer);
            }
            Step::ForeignInsightWithEmbed(id) => {
                let token = self.embed_token(&mut out, plan).await;
                let auth = format!("Bearer {token}");
                let path = format!("/v1/insights/{id}");
                let (status, answer) = self
                    .send(&mut out, Method::GET, &path, ("authorization", &auth), None)
                    .await;
                expect(status, &[404], &answer);
            }
            Step::ForeignPortalInsight(id) | Step::ForeignPortalLog(id) => {
                let page = if matches!(plan.step, Step::ForeignPortalLog(_)) {
                    "logs"
                } else {
                    "insights"
                };
                let cookie = format!("epai_session={}", plan.session);
                let path = format!("/portal/{page}/{id}");
                let (status, answer) = self
                    .send(&mut out, Method::GET, &path, ("cookie", &cookie), None)
                    .await;
                expect(status, &[404], &answer);
            }
            Step::ForeignWebhook(action, id) => {
                let (method, path, body) = match *action {
                    "update" => (
                        Method::PATCH,
                        format!("/v1/webhooks/{id}"),
                        Some(json!({"enabled": false})),
                    ),
                    "delete" => (Method::DELETE, format!("/v1/webhooks/{id}"), None),
                    "rotate" => (
                        Method::POST,
                        format!("/v1/webhooks/{id}/rotate-secret"),
                        None,
                    ),
                    "test" => (Method::POST, format!("/v1/webhooks/{id}/test"), None),
                    _ => (Method::GET, format!("/v1/webhooks/{id}/deliveries"), None),
                };
                let credential = if path.ends_with("test") { Session } else { Key };
                let (status, answer) = self
                    .as_(&mut out, plan, credential, method, &path, body)
                    .await;
                expect(status, &[404], &answer);
            }
        }
        out
    }
}

/// The next step for `tenant`, chosen by `rng` from what exists now.
fn choose(rng: &mut StdRng, tenants: &[Tenant], tenant: usize) -> Step {
    let me = &tenants[tenant];
    let credential = if rng.random_bool(0.5) {
        Credential::Key
    } else {
        Credential::Session
    };
    let victim = loop {
        let other = rng.random_range(0..tenants.len());
        if other != tenant {
            break &tenants[other];
        }
    };
    let foreign_insight = *victim.insights.choose(rng).unwrap();
    let own_insight = *me.insights.choose(rng).unwrap();
    match rng.random_range(0..30) {
        0 => Step::PostEvent("/v1/events"),
        1 => Step::PostEvent("/ingest"),
        2 => Step::PostEvent(if rng.random_bool(0.5) {
            "/ingest-v2"
        } else {
            "/functions/v1/ingest"
        }),
        3 => Step::PostBatch,
        4 => Step::ListEvents(credential),
        5 => Step::ListInsights(credential),
        6 => Step::OwnInsight(credential, own_insight),
        7 => Step::OriginalInsights,
        8 => Step::OriginalPublicInsight(own_insight),
        9 => Step::Logs(credential),
        10 => Step::OriginalLogs,
        11 => Step::Usage(credential),
        12 => Step::OriginalUsage,
        13 => Step::KeyStatus,
        14 => Step::OriginalKeyStatus,
        15 => Step::RegenerateKey,
        16 => Step::MintEmbedAndRead,
        17 => Step::ListWebhooks(credential),
        18 => Step::CreateWebhook(credential),
        19 => match me.webhooks.choose(rng) {
            Some(id) if rng.random_bool(0.5) => Step::RotateOwnSecret(*id),
            Some(id) => Step::OwnDeliveries(*id),
            None => Step::Models,
        },
        20 => {
            if rng.random_bool(0.5) {
                Step::Predict(credential)
            } else {
                Step::OriginalPredict
            }
        }
        21 | 22 => Step::ForeignInsight(credential, foreign_insight),
        23 => Step::ForeignPublicInsight(foreign_insight),
        24 => Step::ForeignEmbedScope(foreign_insight),
        25 => Step::ForeignInsightWithEmbed(foreign_insight),
        26 => match victim.logs.choose(rng) {
            Some(log) if rng.random_bool(0.5) => Step::ForeignPortalLog(*log),
            _ => Step::ForeignPortalInsight(foreign_insight),
        },
        _ => match victim.webhooks.choose(rng) {
            Some(id) => {
                let action = *["update", "delete", "rotate", "test", "deliveries"]
                    .choose(rng)
                    .unwrap();
                Step::ForeignWebhook(action, *id)
            }
            None => Step::ForeignInsight(credential, foreign_insight),
        },
    }
}

async fn setup(app: &TestApp, model: Uuid) -> Vec<Tenant> {
    let admin = app.db.admin().await;
    let mut tenants = Vec::new();
    for i in 0..PARTNERS {
        let partner = partner_on(&app.db, &format!("Tenant {i}")).await;
        let claims = SessionClaims::new(
            partner.user_id,
            format!("tenant{i}@example.com"),
            SessionId::new(Uuid::new_v4()),
            Utc::now(),
            Duration::from_secs(3600),
        );
        let marker = format!("mark{i:02}x{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut insights = Vec::new();
        for n in 0..3 {
            let row = admin
                .query_one(
                    "INSERT INTO insights (partner_id, model_id, content) VALUES ($1, $2, $3) RETURNING id",
                    &[
                        &partner.partner_id,
                        &model,
                        &json!({"title": format!("insight {n}"), "description": "d", "confidence": 0.5,
                                "recommendation": "r", "marker": marker}),
                    ],
                )
                .await
                .unwrap();
            insights.push(row.get(0));
        }
        tenants.push(Tenant {
            key: partner.key,
            session: app.jwt.issue(&claims).unwrap(),
            partner_id: partner.partner_id,
            user_id: partner.user_id,
            marker,
            insights,
            webhooks: Vec::new(),
            events: Vec::new(),
            logs: Vec::new(),
            probed: HashSet::new(),
        });
    }
    tenants
}

/// Fails when `body`, answered to `tenant`, names another partner's data.
fn assert_no_foreign_data(tenants: &[Tenant], tenant: usize, request: &str, body: &str, seed: u64) {
    let me = &tenants[tenant];
    for (index, other) in tenants.iter().enumerate() {
        if index == tenant {
            continue;
        }
        for needle in other.identifiers() {
            assert!(
                !body.contains(&needle) || me.probed.contains(&needle),
                "seed {seed}: tenant {tenant}'s {request} answered tenant {index}'s {needle}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn no_partner_ever_sees_another_partners_data_and_every_probe_is_recorded() {
    let seed = std::env::var("EPAI_ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("isolation seed: {seed} (EPAI_ISOLATION_SEED={seed} replays this run)");
    let mut rng = StdRng::seed_from_u64(seed);

    let settings = ServerSettings {
        rate_limits: epai_server::rate_limit::RateLimitSettings {
            per_key: Quota::per_minute(0),
            per_ip: Quota::per_minute(0),
            redis_url: None,
        },
        webhooks: WebhookSettings {
            policy: UrlPolicy {
                allow_private: true,
                http_hosts: vec!["127.0.0.1".into()],
            },
            ..WebhookSettings::default()
        },
        ..ServerSettings::default()
    };
    let mut app = TestApp::spawn_with(TestDatabase::migrated().await, settings).await;
    let model: Uuid = app
        .db
        .admin()
        .await
        .query_one(
            "INSERT INTO models (name, version, status) VALUES ('isolation_model', '1', 'active') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut tenants = setup(&app, model).await;
    let run = Run { app: &app };

    // Every partner gets a webhook and a logged request before the random part, so probes of
    // foreign webhooks and logs have targets.
    for (tenant, state) in tenants.iter_mut().enumerate() {
        let plan = Planned {
            tenant,
            key: state.key.clone(),
            session: state.session.clone(),
            marker: state.marker.clone(),
            step: Step::CreateWebhook(Credential::Key),
        };
        let outcome = run.execute(&plan).await;
        state.webhooks.extend(outcome.webhook);
    }
    let admin = app.db.admin().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for state in &mut tenants {
        loop {
            let rows = admin
                .query(
                    "SELECT id FROM logs WHERE partner_id = $1",
                    &[&state.partner_id],
                )
                .await
                .unwrap();
            if !rows.is_empty() {
                state.logs = rows.iter().map(|r| r.get(0)).collect();
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "request logs were never written"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut expected: BTreeMap<(Uuid, Uuid), i64> = BTreeMap::new();
    let mut requests = 0usize;
    let mut attempts = 0usize;
    let mut done = 0usize;
    while done < OPERATIONS {
        // One step per partner in a wave, so a key rotation never races the partner's own
        // requests; the waves' requests run concurrently.
        let mut members: Vec<usize> = (0..tenants.len()).collect();
        let wave: Vec<Planned> = (0..WAVE.min(OPERATIONS - done))
            .map(|_| {
                let at = rng.random_range(0..members.len());
                let tenant = members.swap_remove(at);
                let step = choose(&mut rng, &tenants, tenant);
                if let Some(id) = step.foreign_id() {
                    let state = &mut tenants[tenant];
                    state.probed.insert(id.to_string());
                    state.probed.insert(id.simple().to_string());
                    *expected.entry((state.partner_id, id)).or_default() += 1;
                    attempts += 1;
                }
                let state = &tenants[tenant];
                Planned {
                    tenant,
                    key: state.key.clone(),
                    session: state.session.clone(),
                    marker: state.marker.clone(),
                    step,
                }
            })
            .collect();
        done += wave.len();
        let outcomes = join_all(wave.iter().map(|plan| run.execute(plan))).await;
        for (plan, outcome) in wave.iter().zip(outcomes) {
            for (request, status, body) in &outcome.responses {
                assert!(
                    *status < 500,
                    "seed {seed}: {request} answered {status}: {body}"
                );
                assert_no_foreign_data(&tenants, plan.tenant, request, body, seed);
                requests += 1;
            }
            let state = &mut tenants[plan.tenant];
            state.events.extend(outcome.events);
            state.webhooks.extend(outcome.webhook);
            if let Some(key) = outcome.new_key {
                state.key = key;
            }
        }
    }

    // Every partner's final view, after all the writes, again holds only its own data.
    for (tenant, state) in tenants.iter().enumerate() {
        for path in [
            "/v1/events?limit=100",
            "/v1/insights?limit=100",
            "/v1/webhooks",
            "/v1/logs?limit=1000",
        ] {
            let response = app.get_with_key(path, &state.key).await;
            assert_eq!(response.status(), 200, "{path}");
            let body = response.text().await.unwrap();
            assert_no_foreign_data(&tenants, tenant, path, &body, seed);
            requests += 1;
        }
    }

    app.shutdown().await;
    let recorded: BTreeMap<(Uuid, Uuid), i64> = admin
        .query(
            "SELECT partner_id, (details->>'id')::uuid, count(*) FROM security_events
             WHERE event_type = 'cross_tenant_access' GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect();
    assert_eq!(
        recorded, expected,
        "seed {seed}: every cross-tenant attempt, and nothing else, is a security event"
    );
    // Probes changed nothing: every webhook still exists, with its owner.
    for state in &tenants {
        for webhook in &state.webhooks {
            let owner: Uuid = admin
                .query_one("SELECT partner_id FROM webhooks WHERE id = $1", &[webhook])
                .await
                .unwrap()
                .get(0);
            assert_eq!(owner, state.partner_id);
        }
    }
    println!(
        "isolation: {PARTNERS} partners, {requests} requests, {attempts} cross-tenant attempts, seed {seed}"
    );
}
