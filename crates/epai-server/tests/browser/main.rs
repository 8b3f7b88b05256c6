//! The portal and the widget in a real headless Chromium, driven over WebDriver.
//!
//! Needs `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`); without
//! them these tests fail, they do not skip. With `EPAI_SCREENSHOTS=docs/screenshots` they also
//! refresh the README's screenshots of the main pages.

// The API tests' server harness; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod browser;

use epai_server::ServerSettings;
use epai_server::rate_limit::Quota;
use epai_store::testing::TestDatabase;
use serde_json::{Value, json};

use browser::Browser;
use helpers::TestApp;

/// Every page load, script and widget read comes from one loopback address; the per-IP limit
/// would otherwise throttle the test itself.
async fn spawn_app() -> TestApp {
    let mut settings = ServerSettings::default();
    settings.rate_limits.per_ip = Quota::per_minute(100_000);
    settings.rate_limits.per_key = Quota::per_minute(100_000);
    TestApp::spawn_with(TestDatabase::migrated().await, settings).await
}

const PASSWORD: &str = "correct horse battery";

async fn sign_up(browser: &Browser, app: &TestApp, email: &str) {
    browser.open(&app.url("/portal/signup")).await;
    browser.fill("#name", "Acme Shop").await;
    browser.fill("#email", email).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for("#event-total").await;
}

/// An insight for the partner behind `email`, written directly as the worker would.
async fn insert_insight(app: &TestApp, email: &str, content: Value) -> uuid::Uuid {
    app.db
        .admin()
        .await
        .query_one(
            "INSERT INTO insights (partner_id, model_id, content)
             SELECT p.id, (SELECT id FROM models ORDER BY name LIMIT 1), $2
             FROM partners p WHERE p.email = $1 RETURNING id",
            &[&email, &content],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_partner_signs_up_regenerates_the_key_and_sees_its_events_on_the_dashboard() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    sign_up(&browser, &app, "flow@example.com").await;

    browser.click("#logout").await;
    browser.wait_for("#email").await;
    browser.fill("#email", "flow@example.com").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for("#event-total").await;

    browser.open(&app.url("/portal/api-key/regenerate")).await;
    browser.click("#confirm-regenerate").await;
    let key = browser.text("#new-key").await;
    assert!(key.starts_with("epai_"), "{key}");
    browser.screenshot("api-key").await;

    let response = app
        .post_json(
            "/v1/events",
            &key,
            &json!({"event_type": "page_view", "data": {"url": "/pricing"}}),
        )
        .await;
    assert_eq!(response.status(), 202);

    browser.open(&app.url("/portal/dashboard")).await;
    assert_eq!(browser.text("#event-total").await, "1");
    browser.screenshot("dashboard").await;

    browser.click("form.theme button").await;
    browser.wait_for("html[data-theme=dark]").await;
    let background = browser
        .script("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(background, "rgb(18, 22, 27)");
    browser.screenshot("dashboard-dark").await;
    browser.close().await;
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    sign_up(&browser, &app, "csrf@example.com").await;
    browser.open(&app.url("/portal/settings")).await;
    browser
        .script("document.querySelector('form.card input[name=csrf]').remove(); return ''")
        .await;
    browser.fill("#name", "Renamed").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for("p.notice.error").await;
    assert_eq!(browser.text("h1").await, "Forbidden");
    browser.open(&app.url("/portal/settings")).await;
    assert_eq!(browser.attr("#name", "value").await, "Acme Shop");
    browser.close().await;
}

const HOSTILE_TITLE: &str = "<img src=x onerror=alert(1)>";

#[tokio::test]
async fn a_hostile_insight_title_is_shown_as_text_in_the_portal_and_the_widget() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    sign_up(&browser, &app, "xss@example.com").await;
    let id = insert_insight(
        &app,
        "xss@example.com",
        json!({"title": HOSTILE_TITLE, "description": "Expect 85% attendance", "confidence": 0.92}),
    )
    .await;

    browser
        .open(&app.url(&format!("/portal/insights/{id}")))
        .await;
    assert_eq!(browser.text("h1").await, HOSTILE_TITLE);
    assert_eq!(
        browser
            .script("return document.querySelectorAll('img').length")
            .await,
        "0"
    );
    browser.assert_no_alert().await;

    let token = embed_token(&app, &browser, json!({ "insight_id": id })).await;
    browser
        .open(&app.url(&format!("/sdk/v1/demo?insight-id={id}&token={token}")))
        .await;
    assert_eq!(browser.text("#events li").await, "epai:load");
    let title = browser
        .script(
            "return document.getElementById('light').shadowRoot.querySelector('h3').textContent",
        )
        .await;
    assert_eq!(title, HOSTILE_TITLE);
    let images = browser
        .script(
            "return [document, ...[...document.querySelectorAll('epai-insight')].map(e => e.shadowRoot)]
               .reduce((n, root) => n + root.querySelectorAll('img').length, 0)",
        )
        .await;
    assert_eq!(images, "0");
    browser.assert_no_alert().await;
    browser.screenshot("widget-demo").await;
    browser.close().await;
}

#[tokio::test]
async fn a_forecast_insight_is_shown_with_its_chart_and_interval() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    sign_up(&browser, &app, "chart@example.com").await;
    let counts: Vec<f64> = (0..42)
        .map(|day| 40.0 + f64::from(day % 7) * 6.0 + f64::from(day) * 0.5)
        .collect();
    let content = epai_engine::forecast::volume_forecast_insight(
        "page_view",
        chrono::Utc::now().date_naive() - chrono::Days::new(42),
        &counts,
        epai_engine::forecast::Horizon::new(14).unwrap(),
        &[epai_engine::forecast::IntervalLevel::new(80.0).unwrap()],
        chrono::Utc::now(),
    )
    .unwrap();
    let id = insert_insight(
        &app,
        "chart@example.com",
        serde_json::to_value(content).unwrap(),
    )
    .await;

    browser
        .open(&app.url(&format!("/portal/insights/{id}")))
        .await;
    browser.wait_for("figure.chart svg path.band").await;
    assert_eq!(browser.text("h1").await, "page_view volume forecast");
    browser.screenshot("insight").await;
    browser.close().await;
}

/// Mints an embed token with the partner's key, regenerated through the portal.
async fn embed_token(app: &TestApp, browser: &Browser, request: Value) -> String {
    browser.open(&app.url("/portal/api-key/regenerate")).await;
    browser.click("#confirm-regenerate").await;
    let key = browser.text("#new-key").await;
    let response = app.post_json("/v1/embed-tokens", &key, &request).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_widget_shows_its_error_state_for_expired_foreign_or_secret_credentials() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    sign_up(&browser, &app, "widget@example.com").await;
    let id = insert_insight(
        &app,
        "widget@example.com",
        json!({"title": "Attendance Forecast"}),
    )
    .await;

    let foreign = embed_token(
        &app,
        &browser,
        json!({ "origin": "https://elsewhere.example" }),
    )
    .await;
    let expired = expired_embed_token(&app, "widget@example.com").await;
    for token in [
        foreign,
        expired,
        "epai_secretkeythatmustnotbeused".to_owned(),
    ] {
        browser
            .open(&app.url(&format!("/sdk/v1/demo?insight-id={id}&token={token}")))
            .await;
        browser.wait_for("#events li").await;
        assert!(browser.text("#events li").await.starts_with("epai:error"));
        let state = browser
            .script("return document.getElementById('light').shadowRoot.querySelector('.card').dataset.state")
            .await;
        assert_eq!(state, "error", "{token}");
    }
    browser.close().await;
}

/// An embed token for the partner that expired ten minutes ago, signed with the server's key.
async fn expired_embed_token(app: &TestApp, email: &str) -> String {
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "SELECT id, user_id FROM partners WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap();
    let (partner, user): (uuid::Uuid, uuid::Uuid) = (row.get(0), row.get(1));
    let now = chrono::Utc::now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(app.jwt.kid().to_owned());
    jsonwebtoken::encode(
        &header,
        &json!({"sub": user, "partner": partner, "aud": "epai-embed", "iat": now - 1200,
                "exp": now - 600, "jti": uuid::Uuid::new_v4()}),
        &jsonwebtoken::EncodingKey::from_secret(helpers::TEST_JWT_SECRET),
    )
    .unwrap()
}
