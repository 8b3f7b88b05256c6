//! The portal's HTML pages over HTTP: sign-up, CSRF, session cookie, security headers.

use crate::helpers::TestApp;

/// The value of `name="csrf"` in a page.
pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

/// `name=value` of cookie `name` set by a response.
pub fn cookie_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs up through the form and returns the session cookie (`epai_session=...`).
pub async fn sign_up(app: &TestApp, client: &reqwest::Client, email: &str) -> String {
    let form = client.get(app.url("/portal/signup")).send().await.unwrap();
    let nonce = cookie_of(&form, "epai_csrf").expect("a nonce cookie");
    let csrf = csrf_of(&form.text().await.unwrap());
    let response = client
        .post(app.url("/portal/signup"))
        .header("cookie", &nonce)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Acme <b>Shop</b>"),
            ("email", email),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/portal/dashboard");
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Secure"), "plain HTTP from an untrusted peer");
    cookie_of(&response, "epai_session").unwrap()
}

#[tokio::test]
async fn signing_up_through_the_form_opens_the_dashboard_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    let session = sign_up(&app, &client, "shop@example.com").await;
    let dashboard = client
        .get(app.url("/portal/dashboard"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    assert_eq!(
        dashboard.headers()["content-security-policy"],
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    );
    let html = dashboard.text().await.unwrap();
    assert!(html.contains("id=\"event-total\""), "{html}");
    assert!(!html.contains("<script>"), "no inline script");

    let settings = client
        .get(app.url("/portal/settings"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        settings.contains("Acme &lt;b&gt;Shop&lt;/b&gt;"),
        "escaped: {settings}"
    );
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_the_login() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    for path in ["/portal/dashboard", "/portal/api-key", "/portal/logs"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/portal/login?expired=1");
    }
    let expired = client
        .get(app.url("/portal/dashboard"))
        .header("cookie", "epai_session=not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 303);
}

#[tokio::test]
async fn posts_without_or_with_a_wrong_csrf_token_are_forbidden() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    let session = sign_up(&app, &client, "csrf@example.com").await;
    for body in [vec![], vec![("csrf", "forged")]] {
        let response = client
            .post(app.url("/portal/api-key/regenerate"))
            .header("cookie", &session)
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }
    let anonymous = client
        .post(app.url("/portal/login"))
        .form(&[
            ("email", "csrf@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
}

#[tokio::test]
async fn regenerating_shows_the_new_key_once_and_it_works() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    let session = sign_up(&app, &client, "keys@example.com").await;
    let confirm = client
        .get(app.url("/portal/api-key/regenerate"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shown = client
        .post(app.url("/portal/api-key/regenerate"))
        .header("cookie", &session)
        .form(&[("csrf", csrf_of(&confirm))])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = shown.find("id=\"new-key\">").unwrap() + 13;
    let key = shown[start..].split('<').next().unwrap();
    assert!(key.starts_with("epai_"), "{key}");
    let status = app.get_with_key("/v1/models", key).await;
    assert_eq!(status.status(), 200);
    let page = client
        .get(app.url("/portal/api-key"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(key), "the key is never shown again");
}

#[tokio::test]
async fn a_wrong_password_on_the_login_form_is_refused_and_recorded() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    sign_up(&app, &client, "login@example.com").await;
    let form = client.get(app.url("/portal/login")).send().await.unwrap();
    let nonce = cookie_of(&form, "epai_csrf").unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let response = client
        .post(app.url("/portal/login"))
        .header("cookie", &nonce)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "login@example.com"),
            ("password", "wrong password!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("invalid login credentials")
    );
    let failures: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM security_events WHERE event_type = 'login_failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 1);
}

async fn page(app: &TestApp, client: &reqwest::Client, session: &str, path: &str) -> String {
    let response = client
        .get(app.url(path))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn logs_events_models_guide_and_settings_show_the_partners_own_data() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    let session = sign_up(&app, &client, "pages@example.com").await;
    let confirm = page(&app, &client, &session, "/portal/api-key/regenerate").await;
    let shown = client
        .post(app.url("/portal/api-key/regenerate"))
        .header("cookie", &session)
        .form(&[("csrf", csrf_of(&confirm))])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = shown.find("id=\"new-key\">").unwrap() + 13;
    let key = shown[start..].split('<').next().unwrap().to_owned();
    let ingested = app
        .post_json(
            "/v1/events",
            &key,
            &serde_json::json!({"event_type": "signup_clicked", "data": {"plan": "<pro>"}}),
        )
        .await;
    assert_eq!(ingested.status(), 202);

    let events = page(
        &app,
        &client,
        &session,
        "/portal/events?event_type=signup_clicked",
    )
    .await;
    assert!(
        events.contains("signup_clicked") && events.contains("&lt;pro&gt;"),
        "{events}"
    );
    let none = page(&app, &client, &session, "/portal/events?event_type=other").await;
    assert!(none.contains("No events yet."));

    // Request logs are written in the background; these rows stand for two requests.
    app.db
        .admin()
        .await
        .execute(
            "INSERT INTO logs (partner_id, endpoint, method, status, request_body)
             SELECT id, '/v1/events', 'POST', 202, '{\"api_key\": \"[masked]\"}'::jsonb
             FROM partners WHERE email = 'pages@example.com'
             UNION ALL
             SELECT id, '/v1/nothing-here', 'GET', 404, NULL
             FROM partners WHERE email = 'pages@example.com'",
            &[],
        )
        .await
        .unwrap();
    let logs = page(
        &app,
        &client,
        &session,
        "/portal/logs?status=2xx&endpoint=%2Fv1%2Fevents",
    )
    .await;
    assert!(logs.contains("<code>/v1/events</code>"), "{logs}");
    assert!(!logs.contains("/v1/nothing-here"), "filtered out by status");
    let detail_path = logs
        .split("href=\"")
        .find_map(|part| part.strip_prefix("/portal/logs/"))
        .map(|rest| format!("/portal/logs/{}", rest.split('"').next().unwrap()))
        .unwrap();
    let detail = page(&app, &client, &session, &detail_path).await;
    assert!(
        detail.contains("[masked]") && !detail.contains(&key),
        "{detail}"
    );

    let guide = page(&app, &client, &session, "/portal/guide").await;
    assert!(guide.contains(&format!("http://{}/v1/events", app.address)));
    assert!(guide.contains("/sdk/v1/epai.js"));
    page(&app, &client, &session, "/portal/models").await;

    let settings = page(&app, &client, &session, "/portal/settings").await;
    let saved = client
        .post(app.url("/portal/settings"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf_of(&settings).as_str()),
            ("name", "Acme & Co"),
            ("email", "billing@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    let saved = saved.text().await.unwrap();
    assert!(
        saved.contains("Saved.") && saved.contains("value=\"Acme &amp; Co\""),
        "{saved}"
    );
    let partner = app
        .db
        .admin()
        .await
        .query_one(
            "SELECT name, email FROM partners WHERE email = 'billing@example.com'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(partner.get::<_, String>(0), "Acme & Co");
}

#[tokio::test]
async fn the_models_page_runs_the_attendance_playground_on_the_partners_events() {
    let app = TestApp::spawn().await;
    let client = no_redirects();
    let session = sign_up(&app, &client, "playground@portal.test").await;
    let token = session.trim_start_matches("epai_session=");
    let key: serde_json::Value = client
        .post(app.url("/v1/api-key"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["api_key"].as_str().unwrap();
    let events: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            serde_json::json!({"event_type": "event_attendance", "data": {
                "venue_id": "hall", "capacity": 200, "attendee_count": 150 + i % 10,
                "event_date": format!("2026-10-{:02}", 1 + i % 28), "genre": "jazz",
                "ticket_price": 30, "marketing_budget": 800
            }})
        })
        .collect();
    let stored = app
        .post_json(
            "/v1/events/batch",
            key,
            &serde_json::json!({ "events": events }),
        )
        .await;
    assert_eq!(stored.status(), 202);

    let models = page(&app, &client, &session, "/portal/models").await;
    assert!(models.contains("Try a prediction"));
    let csrf = csrf_of(&models);
    let predicted = client
        .post(app.url("/portal/models/predict"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("model", "attendance_forecast"),
            ("venue", "hall"),
            ("eventDate", "2026-12-05"),
            ("genre", "jazz"),
            ("ticketPrice", "30"),
            ("marketingBudget", "800"),
            ("venueCapacity", "200"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(predicted.status(), 200);
    let html = predicted.text().await.unwrap();
    let shown = html
        .split("<strong class=\"prediction\">")
        .nth(1)
        .and_then(|rest| rest.split("</strong>").next())
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no prediction in the page"));
    assert!(
        (130.0..=175.0).contains(&shown),
        "about 154 of 200 expected, got {shown}"
    );

    let missing = client
        .post(app.url("/portal/models/predict"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("model", "attendance_forecast")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 200);
    assert!(
        missing.text().await.unwrap().contains("role=\"alert\""),
        "an error is shown"
    );
}
