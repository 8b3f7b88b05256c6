//! The API as the portal and the widget use it: session-only key management, reads with a
//! session, embed tokens and their limits, the original portal paths, CORS.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};

async fn key_from(app: &TestApp, token: &str) -> String {
    let response = app
        .with_bearer(Method::POST, "/v1/api-key", token)
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(body["key_prefix"].as_str().unwrap().starts_with("epai_"));
    body["api_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_session_manages_the_key_which_then_ingests_and_reads() {
    let mut app = TestApp::spawn().await;
    let token = app.portal_session("owner@portal.test").await;

    let none = app
        .with_bearer(Method::GET, "/v1/api-key", &token)
        .await
        .send()
        .await
        .unwrap();
    problem(none, 404, "not-found").await;
    let key = key_from(&app, &token).await;
    let status: Value = app.bearer_json(Method::GET, "/v1/api-key", &token).await;
    assert_eq!(status["key_prefix"], key[..11]);
    assert!(
        !status.to_string().contains(&key),
        "the key is never shown again"
    );

    // API keys cannot manage keys.
    let with_key = app.get_with_key("/v1/api-key", &key).await;
    problem(with_key, 401, "auth/missing-session").await;

    assert_eq!(
        app.post_json(
            "/v1/events",
            &key,
            &json!({"event_type": "page_view", "data": {}})
        )
        .await
        .status(),
        202
    );
    // The portal reads the same data with its session.
    let events: Value = app.bearer_json(Method::GET, "/v1/events", &token).await;
    assert_eq!(events["data"][0]["event_type"], "page_view");
    let usage: Value = app
        .bearer_json(Method::GET, "/v1/usage?days=1", &token)
        .await;
    assert_eq!(usage["total_events"], 1);

    // The original portal sent Supabase's anon key as `apikey` beside the session: ignored.
    let with_anon = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&token)
        .header("apikey", "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln")
        .send()
        .await
        .unwrap();
    assert_eq!(with_anon.status(), 200);

    // Regenerating replaces the key at once (no grace period by default).
    let replacement = key_from(&app, &token).await;
    assert_ne!(replacement, key);
    problem(
        app.post_json("/v1/events", &key, &json!({"event_type": "x", "data": {}}))
            .await,
        401,
        "auth/invalid-api-key",
    )
    .await;
    let admin = app.db.admin().await;
    app.shutdown().await;
    let rotations: i64 = admin
        .query_one(
            "SELECT count(*) FROM security_events WHERE event_type = 'api_key_rotated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rotations, 2);
}

#[tokio::test]
async fn the_original_portal_paths_keep_their_shapes() {
    let mut app = TestApp::spawn().await;
    let token = app.portal_session("legacy@portal.test").await;
    for path in ["/api-key-manager", "/functions/v1/api-key-manager"] {
        let created: Value = app.bearer_json(Method::POST, path, &token).await;
        assert!(
            created["apiKey"].as_str().unwrap().starts_with("epai_"),
            "{path}"
        );
        let shown: Value = app.bearer_json(Method::GET, path, &token).await;
        assert_eq!(
            shown["apiKey"],
            Value::Null,
            "plaintext keys are never retrievable"
        );
        assert_eq!(
            shown["keyPrefix"],
            created["apiKey"].as_str().unwrap()[..11]
        );
        assert!(shown["expiresAt"].is_string() && shown["createdAt"].is_string());
    }
    let key: Value = app
        .bearer_json(Method::POST, "/api-key-manager", &token)
        .await;
    let key = key["apiKey"].as_str().unwrap().to_owned();
    for i in 0..3 {
        app.post_json(
            "/v1/events",
            &key,
            &json!({"event_type": "x", "data": {"password": "hunter2", "i": i}}),
        )
        .await;
    }
    let stats: Value = app
        .bearer_json(Method::POST, "/get-usage-stats", &token)
        .await;
    assert_eq!(stats["total_ingestion_events"], 3);
    assert_eq!(stats["total_insights_generated"], 0);
    assert!(stats["latest_event_timestamp"].is_string());

    // Logs are written after the response; a restart of the server flushes them.
    let db_url = app.db.url();
    app.shutdown().await;
    assert!(!db_url.is_empty());
    let app = TestApp::spawn_sharing(&app).await;
    let logs: Value = app
        .with_bearer(Method::POST, "/functions/v1/get-partner-logs", &token)
        .await
        .json(&json!({"page": 0, "pageSize": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = logs["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    for entry in logs {
        for field in [
            "id",
            "created_at",
            "method",
            "path",
            "status_code",
            "request_body",
            "response_body",
        ] {
            assert!(entry.get(field).is_some(), "{field} missing in {entry}");
        }
    }
    let text = Value::Array(logs.clone()).to_string();
    assert!(
        !text.contains("hunter2") && !text.contains(&key),
        "secrets are masked: {text}"
    );
}

async fn embed_token(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/embed-tokens"))
        .header("apikey", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn embed_tokens_read_insights_in_their_scope_and_nothing_else() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let admin = app.db.admin().await;
    let model: uuid::Uuid = admin
        .query_one("INSERT INTO models (name, version, status) VALUES ('forecast', '1', 'active') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    let mut insights = Vec::new();
    for title in ["one", "two"] {
        let id: uuid::Uuid = admin
            .query_one(
                "INSERT INTO insights (partner_id, model_id, content) VALUES ($1, $2, $3) RETURNING id",
                &[&acme.partner_id, &model, &json!({"title": title})],
            )
            .await
            .unwrap()
            .get(0);
        insights.push(id);
    }

    let minted = embed_token(
        &app,
        &acme.key,
        json!({"insight_id": insights[0], "ttl_seconds": 300}),
    )
    .await;
    assert_eq!(minted.status(), 201);
    let minted: Value = minted.json().await.unwrap();
    assert_eq!(minted["expires_in"], 300);
    let token = minted["token"].as_str().unwrap();

    let read = |path: String| app.client.get(app.url(&path)).bearer_auth(token).send();
    let one: Value = read(format!("/v1/insights/{}", insights[0]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["content"]["title"], "one");
    problem(
        read(format!("/v1/insights/{}", insights[1])).await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let list: Value = read("/v1/insights".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "the list is limited to the scope"
    );

    for (method, path) in [
        (Method::GET, "/v1/events"),
        (Method::GET, "/v1/logs"),
        (Method::GET, "/v1/usage"),
        (Method::GET, "/v1/api-key"),
        (Method::POST, "/v1/embed-tokens"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 401 | 403),
            "{path}: {}",
            response.status()
        );
    }
    let ingest = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(token)
        .json(&json!({"event_type": "x", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 401, "an embed token cannot ingest");

    // Bound to an origin: only pages of that origin may use it.
    let bound: Value = embed_token(
        &app,
        &acme.key,
        json!({"origin": "https://shop.example.com"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let bound = bound["token"].as_str().unwrap();
    let from = |origin: Option<&'static str>| {
        let mut request = app.client.get(app.url("/v1/insights")).bearer_auth(bound);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        from(Some("https://shop.example.com"))
            .await
            .unwrap()
            .status(),
        200
    );
    problem(
        from(Some("https://evil.example.net")).await.unwrap(),
        403,
        "auth/forbidden",
    )
    .await;
    problem(from(None).await.unwrap(), 403, "auth/forbidden").await;

    // Bad requests for tokens.
    for body in [
        json!({"ttl_seconds": 3600}),
        json!({"ttl_seconds": 10}),
        json!({"origin": "shop.example.com/path"}),
        json!({"insight_id": uuid::Uuid::new_v4()}),
        json!({"scope": "everything"}),
    ] {
        let response = embed_token(&app, &acme.key, body.clone()).await;
        assert!(
            matches!(response.status().as_u16(), 400 | 404),
            "{body}: {}",
            response.status()
        );
    }
    // A session token is not an embed token and the other way round: tampering is refused.
    let forged = format!("{}x", &token[..token.len() - 1]);
    problem(
        app.client
            .get(app.url("/v1/insights"))
            .bearer_auth(forged)
            .send()
            .await
            .unwrap(),
        401,
        "auth/invalid-session",
    )
    .await;
}

#[tokio::test]
async fn browsers_may_call_the_public_read_endpoints_from_any_origin() {
    let app = TestApp::spawn().await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/v1/insights"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let ingest_preflight = app
        .client
        .request(Method::OPTIONS, app.url("/v1/events"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        ingest_preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "ingest is for partners' servers, not browsers"
    );
    let delete = app
        .client
        .delete(app.url("/v1/insights"))
        .send()
        .await
        .unwrap();
    problem(delete, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn no_password_key_or_token_is_ever_written_to_logs_or_security_events() {
    let mut app = TestApp::spawn().await;
    let password = "S3cret-passphrase-for-logs";
    let signup = app
        .post_anonymous(
            "/auth/v1/signup",
            &json!({"email": "careful@portal.test", "password": password}),
        )
        .await;
    assert_eq!(signup.status(), 200);
    let session: Value = signup.json().await.unwrap();
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let wrong = app
        .post_anonymous(
            "/auth/v1/token?grant_type=password",
            &json!({"email": "careful@portal.test", "password": format!("{password}-wrong")}),
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let key = key_from(&app, &access).await;
    app.post_json(
        "/v1/events",
        &key,
        &json!({"event_type": "x", "data": {"note": format!("my key is {key}")}}),
    )
    .await;
    let refreshed = app
        .post_anonymous(
            "/auth/v1/token?grant_type=refresh_token",
            &json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let embed: Value = embed_token(&app, &key, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let embed = embed["token"].as_str().unwrap().to_owned();

    let admin = app.db.admin().await;
    app.shutdown().await;
    let written: String = admin
        .query_one(
            "SELECT coalesce(string_agg(row_to_json(l)::text, ' '), '') FROM (
               SELECT * FROM logs) l",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let security: String = admin
        .query_one(
            "SELECT coalesce(string_agg(row_to_json(s)::text, ' '), '') FROM security_events s",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        written.contains("/auth/v1/signup"),
        "the requests were logged"
    );
    for secret in [password, &key, &access, &refresh, &embed] {
        assert!(!written.contains(secret), "logs contain a secret");
        assert!(
            !security.contains(secret),
            "security events contain a secret"
        );
    }
}

#[tokio::test]
async fn the_stream_takes_an_embed_token_in_the_query_string_and_nothing_else() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let session = app.portal_session("streamer@portal.test").await;
    let embed: Value = embed_token(&app, &acme.key, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let embed = embed["token"].as_str().unwrap();
    let open = |token: &str| {
        app.client
            .get(app.url(&format!("/v1/insights/stream?access_token={token}")))
            .send()
    };
    let stream = open(embed).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(stream);
    for not_embed in [acme.key.as_str(), session.as_str(), "garbage"] {
        let refused = open(not_embed).await.unwrap();
        assert_eq!(refused.status(), 401, "{not_embed:.12}");
    }
    let elsewhere = app
        .client
        .get(app.url(&format!("/v1/insights?access_token={embed}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        401,
        "only the stream reads the query string"
    );
}
