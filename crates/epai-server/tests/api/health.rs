use epai_store::testing::TestDatabase;

use crate::helpers::{TestApp, metric_value, problem};

#[tokio::test]
async fn health_answers_without_touching_the_database() {
    let app = TestApp::spawn_on(TestDatabase::empty().await).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn ready_when_the_database_is_migrated() {
    let app = TestApp::spawn().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["migration"], epai_store::latest_migration_version());
}

#[tokio::test]
async fn not_ready_while_migrations_are_missing_then_ready_after_migrating() {
    let app = TestApp::spawn_on(TestDatabase::empty().await).await;
    let response = app.get("/ready").await;
    assert_eq!(response.headers()["retry-after"], "5");
    problem(response, 503, "service/unavailable").await;

    app.db
        .run_with_cluster_lock(epai_store::migrate(app.db.target()))
        .await
        .unwrap();
    assert_eq!(app.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn not_ready_when_the_schema_is_behind_the_binary() {
    let app = TestApp::spawn().await;
    app.db
        .admin()
        .await
        .execute(
            "DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history)",
            &[],
        )
        .await
        .unwrap();
    let body = problem(app.get("/ready").await, 503, "service/unavailable").await;
    assert!(
        body["detail"].as_str().unwrap().contains("epai migrate"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_problem_json() {
    let app = TestApp::spawn().await;
    problem(app.get("/no/such/thing").await, 404, "not-found").await;
    let response = app.client.post(app.url("/health")).send().await.unwrap();
    problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_ingest_and_pool_state() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    for _ in 0..3 {
        let response = app
            .post_json(
                "/v1/events",
                &acme.key,
                &serde_json::json!({"event_type": "x", "data": {}}),
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    app.get("/no/such/route").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let count = metric_value(
        &text,
        "epai_http_requests_total",
        &[("route", "/v1/events"), ("status", "202")],
    )
    .unwrap_or_else(|| panic!("no counter for /v1/events:\n{text}"));
    assert!(count >= 3.0, "{count}");
    assert!(
        text.contains("route=\"(unmatched)\""),
        "404s are counted without their path"
    );
    for metric in [
        "epai_http_request_duration_seconds_bucket",
        "epai_ingest_queue_depth",
        "epai_ingest_commit_rows",
        "epai_db_pool_max_connections",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_api_and_docs_render_it_offline() {
    let app = TestApp::spawn().await;
    let spec: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/events",
        "/v1/events/batch",
        "/v1/insights",
        "/v1/insights/{id}",
        "/v1/insights/stream",
        "/v1/models",
        "/v1/usage",
        "/v1/logs",
        "/ingest",
        "/get-insights",
        "/health",
        "/ready",
        "/auth/v1/signup",
        "/auth/v1/token",
        "/v1/api-key",
        "/v1/embed-tokens",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is not documented");
    }
    let schemas = &spec["components"]["schemas"];
    for schema in [
        "Problem",
        "EventInput",
        "EventPage",
        "InsightRecord",
        "UsageReport",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    assert_eq!(
        schemas["EventInput"]["properties"]["event_type"]["pattern"],
        "^[A-Za-z][A-Za-z0-9_.:-]{0,99}$"
    );
    assert!(spec["components"]["securitySchemes"]["apikey"].is_object());

    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<script src=\"/docs/docs.js\"></script>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let script = app.get("/docs/docs.js").await;
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.text().await.unwrap().contains("/openapi.json"));
}

#[tokio::test]
async fn the_api_also_speaks_h2c() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}
