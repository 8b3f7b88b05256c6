//! Bad input gets a clear 4xx in the documented format, never a 500, and changes nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};

#[tokio::test]
async fn malformed_bodies_are_refused_without_side_effects() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    assert_eq!(
        app.post_json(
            "/v1/events",
            &acme.key,
            &json!({"event_type": "kept", "data": {"a": 1}})
        )
        .await
        .status(),
        202
    );
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed JSON", b"{\"event_type\": ".to_vec()),
        ("JSON null", b"null".to_vec()),
        ("an array", b"[1, 2]".to_vec()),
        (
            "data as an array",
            br#"{"event_type": "x", "data": [1]}"#.to_vec(),
        ),
        (
            "data as null",
            br#"{"event_type": "x", "data": null}"#.to_vec(),
        ),
        ("wrong type", br#"{"event_type": 42, "data": {}}"#.to_vec()),
        ("missing data", br#"{"event_type": "x"}"#.to_vec()),
        (
            "unknown field",
            br#"{"event_type": "x", "data": {}, "extra": 1}"#.to_vec(),
        ),
        (
            "NUL in a value",
            br#"{"event_type": "x", "data": {"s": "a\u0000b"}}"#.to_vec(),
        ),
        (
            "NUL in a key",
            br#"{"event_type": "x", "data": {"a\u0000": 1}}"#.to_vec(),
        ),
        (
            "half a surrogate pair",
            br#"{"event_type": "x", "data": {"s": "\ud800"}}"#.to_vec(),
        ),
        (
            "a number too large to store",
            br#"{"event_type": "x", "data": {"n": 1e1000000}}"#.to_vec(),
        ),
        (
            "a number that would be stored as 100,000 digits",
            br#"{"event_type": "x", "data": {"n": 1e100000}}"#.to_vec(),
        ),
        (
            "metadata not an object",
            br#"{"event_type": "x", "data": {}, "metadata": [1]}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"event_type\": \"x\", \"data\": {\"s\": \"\xff\xfe\"}}".to_vec(),
        ),
        (
            "deep nesting",
            format!(r#"{{"event_type": "x", "data": {{"d": {deep}}}}}"#).into_bytes(),
        ),
        (
            "SQL in the type",
            br#"{"event_type": "x'; DROP TABLE ingestion_events; --", "data": {}}"#.to_vec(),
        ),
        (
            "bad timestamp",
            br#"{"event_type": "x", "data": {}, "timestamp": "2026-13-45"}"#.to_vec(),
        ),
        (
            "far future",
            br#"{"event_type": "x", "data": {}, "timestamp": "2999-01-01T00:00:00Z"}"#.to_vec(),
        ),
    ];
    for (what, body) in cases {
        let response = app
            .post_raw("/v1/events", &acme.key, "application/json", body)
            .await;
        let body = problem(response, 400, "validation/invalid-request").await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{what}");
    }
    problem(
        app.post_raw("/v1/events", &acme.key, "text/plain", b"{}".to_vec())
            .await,
        415,
        "validation/unsupported-media-type",
    )
    .await;
    let huge = vec![b' '; 10 * 1024 * 1024];
    problem(
        app.post_raw("/v1/events", &acme.key, "application/json", huge.clone())
            .await,
        413,
        "payload/too-large",
    )
    .await;
    problem(
        app.post_raw("/v1/events/batch", &acme.key, "application/json", huge)
            .await,
        413,
        "payload/too-large",
    )
    .await;

    let rows: Vec<(String, Value)> = app
        .db
        .admin()
        .await
        .query("SELECT event_type, data FROM ingestion_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [("kept".to_owned(), json!({"a": 1}))],
        "only the good event exists"
    );
}

#[tokio::test]
async fn what_jsonb_cannot_store_is_refused_per_item_in_a_batch() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let deep = "[".repeat(500) + &"]".repeat(500);
    let body = format!(
        r#"{{"events": [
            {{"event_type": "fine", "data": {{"a": 1}}}},
            {{"event_type": "x", "data": {{"s": "\udc00"}}}},
            {{"event_type": "x", "data": {{"d": {deep}}}}},
            {{"event_type": "x", "data": {{"k": ["\u0000"]}}}},
            {{"event_type": "x", "data": {{}}, "metadata": {{"n": 9e99999}}}}
        ]}}"#
    );
    let response = app
        .post_raw("/v1/events/batch", &acme.key, "application/json", body)
        .await;
    let refused = problem(response, 400, "validation/invalid-request").await;
    let errors: Vec<(u64, &str)> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [(1, "data"), (2, "data"), (3, "data.k[0]"), (4, "data")]
    );
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 0);
}

#[tokio::test]
async fn sql_metacharacters_in_data_are_stored_verbatim() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let tricky =
        json!({"q": "'; DELETE FROM partners; --", "unicode": "日本語 ✓", "quote": "\"\\"});
    let response = app
        .post_json(
            "/v1/events",
            &acme.key,
            &json!({"event_type": "search", "data": tricky}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let listed: Value = app
        .get_with_key("/v1/events?type=search", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["data"], tricky);
    let partners: i64 = app
        .db
        .admin()
        .await
        .query_one("SELECT count(*) FROM partners", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partners, 1);
}

#[tokio::test]
async fn unknown_routes_methods_and_bad_queries_are_problems() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    problem(app.get("/v1/nothing-here").await, 404, "not-found").await;
    let delete = app
        .client
        .delete(app.url("/v1/events"))
        .send()
        .await
        .unwrap();
    problem(delete, 405, "method-not-allowed").await;
    for query in [
        "/v1/insights?limit=101",
        "/v1/insights?limit=0",
        "/v1/insights?offset=-1",
        "/v1/insights?limit=abc",
        "/v1/insights?cursor=garbage",
        "/v1/events?since=yesterday",
        "/v1/events?colour=red",
        "/v1/usage?days=0",
        "/v1/logs?limit=5000",
    ] {
        let response = app.get_with_key(query, &acme.key).await;
        problem(response, 400, "validation/invalid-request").await;
    }
    problem(
        app.get_with_key("/v1/insights/not-a-uuid", &acme.key).await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_request_that_outlives_its_timeout_gets_503_problem() {
    let settings = epai_server::ServerSettings {
        request_timeout: std::time::Duration::from_nanos(1),
        ..epai_server::ServerSettings::default()
    };
    let app = TestApp::spawn_with(
        epai_store::testing::TestDatabase::migrated().await,
        settings,
    )
    .await;
    let acme = app.partner("Acme").await;
    let response = app.get_with_key("/v1/events", &acme.key).await;
    assert_eq!(response.headers()["retry-after"], "1");
    problem(response, 503, "service/timeout").await;
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = TestApp::spawn().await;
    let response = app.get("/v1/events").await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn extreme_numbers_and_nul_bodies_neither_break_reads_nor_lose_logs() {
    let mut app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let data = json!({"max": 1.7976931348623157e308, "big_id": 123456789012345678901234567890u128});
    let response = app
        .post_json(
            "/v1/events",
            &acme.key,
            &json!({"event_type": "edge", "data": data}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let listed = app.get_with_key("/v1/events?type=edge", &acme.key).await;
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(
        listed["data"][0]["data"]["big_id"].to_string(),
        "123456789012345678901234567890",
        "large integers keep every digit"
    );
    // A refused body with a NUL character is still logged (without the NUL), and does not take
    // the rest of its batch of log records down with it.
    let nul = app
        .post_raw(
            "/v1/events",
            &acme.key,
            "application/json",
            br#"{"event_type": "x", "data": {"s": "a\u0000b"}}"#.to_vec(),
        )
        .await;
    assert_eq!(nul.status(), 400);
    let admin = app.db.admin().await;
    app.shutdown().await;
    let logged: i64 = admin
        .query_one("SELECT count(*) FROM logs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 3, "every request was logged");
}
