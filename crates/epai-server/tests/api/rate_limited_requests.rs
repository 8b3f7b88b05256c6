//! Rate limits as partners meet them over HTTP: headers on every response, 429 with
//! Retry-After, recovery, per-partner quotas, and failed credentials counted per IP.

use std::time::Duration;

use epai_server::ServerSettings;
use epai_server::rate_limit::{Clock, FakeRelativeClock, InProcessLimiter, Quota, RateLimiter};
use epai_store::testing::TestDatabase;
use serde_json::json;

use crate::helpers::{TestApp, problem};

async fn app_with(per_key: u32, per_ip: u32) -> (TestApp, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let mut settings = ServerSettings::default();
    settings.rate_limits.per_key = Quota::per_minute(per_key);
    settings.rate_limits.per_ip = Quota::per_minute(per_ip);
    let limiter = RateLimiter::InProcess(InProcessLimiter::new(Clock::Manual(clock.clone())));
    let app = TestApp::spawn_with_limiter(TestDatabase::migrated().await, settings, limiter).await;
    (app, clock)
}

#[tokio::test]
async fn a_key_gets_its_burst_then_429_then_recovers() {
    let (app, clock) = app_with(5, 100).await;
    let acme = app.partner("Acme").await;
    let body = json!({"event_type": "x", "data": {}});
    for remaining in (0..5).rev() {
        let response = app.post_json("/v1/events", &acme.key, &body).await;
        assert_eq!(response.status(), 202);
        let headers = response.headers();
        assert_eq!(headers["ratelimit-policy"], "\"key\";q=5;w=60");
        assert_eq!(headers["x-ratelimit-limit"], "5");
        assert_eq!(headers["x-ratelimit-remaining"], remaining.to_string());
        assert!(
            headers["ratelimit"]
                .to_str()
                .unwrap()
                .starts_with(&format!("\"key\";r={remaining};t="))
        );
    }
    let limited = app.post_json("/v1/events", &acme.key, &body).await;
    assert_eq!(limited.headers()["retry-after"], "12");
    problem(limited, 429, "rate-limit/exceeded").await;
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 5);

    clock.advance(Duration::from_secs(12));
    assert_eq!(
        app.post_json("/v1/events", &acme.key, &body).await.status(),
        202
    );
    assert_eq!(
        app.post_json("/v1/events", &acme.key, &body).await.status(),
        429
    );
}

#[tokio::test]
async fn partners_are_limited_independently_and_overrides_apply() {
    let (app, _clock) = app_with(2, 100).await;
    let acme = app.partner("Acme").await;
    let big = app.partner("Big").await;
    app.db
        .store()
        .as_service_role(async |s| {
            s.set_rate_limit(epai_domain::PartnerId::new(big.partner_id), Some(4))
                .await
        })
        .await
        .unwrap();
    let body = json!({"event_type": "x", "data": {}});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.post_json("/v1/events", &big.key, &body)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [202, 202, 202, 202, 429],
        "the override of 4 applies"
    );
    for _ in 0..2 {
        assert_eq!(
            app.post_json("/v1/events", &acme.key, &body).await.status(),
            202
        );
    }
    assert_eq!(
        app.post_json("/v1/events", &acme.key, &body).await.status(),
        429
    );
}

#[tokio::test]
async fn failed_credentials_count_against_the_ip_not_the_key() {
    let (app, _clock) = app_with(3, 2).await;
    let acme = app.partner("Acme").await;
    let body = json!({"event_type": "x", "data": {}});
    let forged = format!("epai_{}", "B".repeat(32));
    problem(
        app.post_json("/v1/events", &forged, &body).await,
        401,
        "auth/invalid-api-key",
    )
    .await;
    let second = app.post_json("/v1/events", &forged, &body).await;
    assert_eq!(second.headers()["ratelimit-policy"], "\"ip\";q=2;w=60");
    problem(second, 401, "auth/invalid-api-key").await;
    problem(
        app.post_json("/v1/events", &forged, &body).await,
        429,
        "rate-limit/exceeded",
    )
    .await;
    // Anonymous requests share the IP budget.
    problem(app.get("/v1/events").await, 429, "rate-limit/exceeded").await;
    // The partner's own key still has its whole quota.
    for _ in 0..3 {
        assert_eq!(
            app.post_json("/v1/events", &acme.key, &body).await.status(),
            202
        );
    }
}
