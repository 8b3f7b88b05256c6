use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};

#[tokio::test]
async fn a_single_event_is_committed_before_the_202() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let response = app
        .post_json(
            "/v1/events",
            &acme.key,
            &json!({"event_type": "page_view", "data": {"url": "/pricing"}, "timestamp": "2026-01-02T03:04:05Z"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id: uuid::Uuid = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "SELECT partner_id, event_type, data, source, version, occurred_at::text FROM ingestion_events WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the acknowledged event is in the table");
    assert_eq!(row.get::<_, uuid::Uuid>(0), acme.partner_id);
    assert_eq!(row.get::<_, String>(1), "page_view");
    assert_eq!(row.get::<_, Value>(2), json!({"url": "/pricing"}));
    assert_eq!(
        (row.get::<_, String>(3), row.get::<_, String>(4)),
        ("api".into(), "1.0".into())
    );
    assert_eq!(row.get::<_, String>(5), "2026-01-02 03:04:05+00");
}

#[tokio::test]
async fn keys_are_accepted_in_every_documented_header() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let body = json!({"event_type": "custom", "data": {}});
    for (name, value) in [
        ("apikey", acme.key.clone()),
        ("x-api-key", acme.key.clone()),
        ("authorization", format!("Bearer {}", acme.key)),
    ] {
        let response = app
            .client
            .post(app.url("/v1/events"))
            .header(name, value)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{name}");
    }
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 3);
}

#[tokio::test]
async fn missing_malformed_unknown_and_expired_keys_are_refused_and_recorded() {
    let mut app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let body = json!({"event_type": "custom", "data": {}});
    let no_key = app
        .client
        .post(app.url("/v1/events"))
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(no_key, 401, "auth/missing-api-key").await;
    problem(
        app.post_json("/v1/events", "sk_live_not_ours", &body).await,
        401,
        "auth/invalid-api-key",
    )
    .await;
    let forged = format!("epai_{}", "A".repeat(32));
    let refused = problem(
        app.post_json("/v1/events", &forged, &body).await,
        401,
        "auth/invalid-api-key",
    )
    .await;
    assert_eq!(refused["message"], "Invalid API key");

    let admin = app.db.admin().await;
    admin
        .execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE partner_id = $1",
            &[&acme.partner_id],
        )
        .await
        .unwrap();
    // The key was never used, so nothing is cached: the next check reads the expiry.
    problem(
        app.post_json("/v1/events", &acme.key, &body).await,
        401,
        "auth/expired-api-key",
    )
    .await;
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 0);

    let db_admin = app.db.admin().await;
    app.shutdown().await;
    let events: Vec<(String, Option<uuid::Uuid>, Value)> = db_admin
        .query(
            "SELECT event_type, partner_id, details FROM security_events ORDER BY created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["invalid_api_key", "invalid_api_key", "expired_api_key"]
    );
    assert_eq!(events[2].1, Some(acme.partner_id));
    let all = format!("{events:?}");
    assert!(
        !all.contains(&forged) && !all.contains(&acme.key),
        "a key leaked: {all}"
    );
}

#[tokio::test]
async fn a_rotated_key_stops_working_even_after_it_was_cached() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let body = json!({"event_type": "custom", "data": {}});
    assert_eq!(
        app.post_json("/v1/events", &acme.key, &body).await.status(),
        202
    );
    let new_key = app
        .db
        .store()
        .as_user(acme.user_id, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    // The rotation reaches the server's cache through a database notification; keep asking
    // until it has (each attempt is a full request), for at most ten seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = app.post_json("/v1/events", &acme.key, &body).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 202);
        assert!(
            std::time::Instant::now() < deadline,
            "the old key still works"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        app.post_json("/v1/events", &new_key, &body).await.status(),
        202
    );
}

#[tokio::test]
async fn data_is_stored_as_written_with_every_digit() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let body = r#"{"events": [
        {"event_type": "sale", "data": {
            "price": 1.50, "big": 123456789012345678901234567890, "e": 2.5e3, "s": "caf\u00e9 \ud83d\ude00"
        }, "metadata": {"tiny": 1e-30}},
        {"event_type": "sale", "data": {}, "metadata": null}
    ]}"#;
    let response = app
        .post_raw("/v1/events/batch", &acme.key, "application/json", body)
        .await;
    assert_eq!(response.status(), 202);
    let stored: Vec<(String, Option<String>)> = app
        .db
        .admin()
        .await
        .query(
            "SELECT data::text, metadata::text FROM ingestion_events ORDER BY data = '{}'::jsonb",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        stored,
        [
            (
                r#"{"e": 2500, "s": "café 😀", "big": 123456789012345678901234567890, "price": 1.50}"#
                    .to_owned(),
                Some(r#"{"tiny": 0.000000000000000000000000000001}"#.to_owned())
            ),
            ("{}".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn a_batch_is_stored_whole_or_not_at_all_with_errors_per_item() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let good = app
        .post_json(
            "/v1/events/batch",
            &acme.key,
            &json!({"events": [
                {"event_type": "page_view", "data": {"url": "/"}},
                {"event_type": "lead", "data": {"leadId": "l1"}, "source": "crm", "version": "2"},
                {"event_type": "page_view", "data": {"url": "/a"}, "metadata": {"ab": "b"}},
            ]}),
        )
        .await;
    assert_eq!(good.status(), 202);
    let body: Value = good.json().await.unwrap();
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["ids"].as_array().unwrap().len(), 3);
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 3);

    let bad = app
        .post_json(
            "/v1/events/batch",
            &acme.key,
            &json!({"events": [
                {"event_type": "page_view", "data": {}},
                {"event_type": "1bad", "data": []},
                {"event_type": "page_view", "data": {}, "unexpected": true},
            ]}),
        )
        .await;
    let refused = problem(bad, 400, "validation/invalid-request").await;
    let errors: Vec<(u64, String)> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (1, "event_type".into()),
            (1, "data".into()),
            (2, "(event)".into())
        ]
    );
    assert_eq!(
        app.count_rows("ingestion_events", acme.partner_id).await,
        3,
        "nothing of the invalid batch was stored"
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"event_type": "x", "data": {}}))
        .collect();
    problem(
        app.post_json("/v1/events/batch", &acme.key, &json!({"events": too_many}))
            .await,
        413,
        "payload/too-large",
    )
    .await;
    problem(
        app.post_json("/v1/events/batch", &acme.key, &json!({"events": []}))
            .await,
        400,
        "validation/invalid-request",
    )
    .await;
}

#[tokio::test]
async fn an_idempotency_key_stores_once_and_replays_the_answer() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let body = json!({"events": [{"event_type": "order", "data": {"n": 1}}, {"event_type": "order", "data": {"n": 2}}]});
    let send = |body: Value| {
        app.client
            .post(app.url("/v1/events/batch"))
            .header("apikey", &acme.key)
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 2);

    let different = send(json!({"events": [{"event_type": "order", "data": {"n": 3}}]}))
        .await
        .unwrap();
    problem(different, 422, "idempotency/key-reused").await;
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 2);

    // Concurrent repeats of one new key still store once.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            app.client
                .post(app.url("/v1/events"))
                .header("apikey", &acme.key)
                .header("idempotency-key", "signup-7")
                .json(&json!({"event_type": "signup", "data": {}}))
                .send()
        })
        .collect();
    let mut ids = HashSet::new();
    for response in futures_util::future::join_all(racers).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        ids.insert(response.json::<Value>().await.unwrap()["id"].to_string());
    }
    assert_eq!(ids.len(), 1, "every repeat got the same event id");
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 3);
}

#[tokio::test]
async fn the_original_ingest_paths_keep_their_shapes() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    for path in ["/ingest", "/functions/v1/ingest"] {
        let response = app
            .post_json(
                path,
                &acme.key,
                &json!({"event_type": "event_attendance", "data": {"event_id": "e1", "attendee_count": 80, "capacity": 100}, "source": "web", "version": "1.0"}),
            )
            .await;
        assert_eq!(response.status(), 201, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["message"], "Event ingested successfully");
        assert!(
            body["eventId"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .is_ok()
        );
    }
    for path in ["/ingest-v2", "/functions/v1/ingest-v2"] {
        let response = app
            .post_json(
                path,
                &acme.key,
                &json!({"eventType": "page_view", "payload": {"url": "/"}}),
            )
            .await;
        assert_eq!(response.status(), 201, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success");
        assert_eq!(body["message"], "Event ingested");
        assert!(body["eventId"].is_string());
    }
    assert_eq!(app.count_rows("ingestion_events", acme.partner_id).await, 4);
}

#[tokio::test]
async fn shutdown_loses_no_acknowledged_event_and_records_key_use() {
    let mut settings = epai_server::ServerSettings::default();
    settings.rate_limits.per_key = epai_server::rate_limit::Quota::OFF;
    let mut app = TestApp::spawn_with(
        epai_store::testing::TestDatabase::migrated().await,
        settings,
    )
    .await;
    let acme = app.partner("Acme").await;
    let requests: Vec<_> = (0..200)
        .map(|i| {
            app.client
                .post(app.url("/v1/events"))
                .header("apikey", &acme.key)
                .json(&json!({"event_type": "tick", "data": {"i": i}}))
                .send()
        })
        .collect();
    let responses = futures_util::future::join_all(requests).await;
    let mut acknowledged = Vec::new();
    for response in responses.into_iter().flatten() {
        if response.status() == 202 {
            let body: Value = response.json().await.unwrap();
            acknowledged.push(body["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
        }
    }
    assert_eq!(acknowledged.len(), 200);
    let admin = app.db.admin().await;
    app.shutdown().await;
    let stored: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE id = ANY($1)",
            &[&acknowledged],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 200);
    let last_used: Option<chrono::DateTime<chrono::Utc>> = admin
        .query_one("SELECT last_used_at FROM api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert!(last_used.is_some(), "key use was flushed at shutdown");
    let logged: i64 = admin
        .query_one(
            "SELECT count(*) FROM logs WHERE endpoint = '/v1/events' AND status = 202",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 200, "every request was logged");
}

#[tokio::test]
async fn the_request_log_keeps_what_was_sent_and_refused_and_sizes_successful_reads() {
    let mut app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let event = json!({"event_type": "signup", "data": {"plan": "pro"}});
    let created: Value = app
        .post_json("/v1/events", &acme.key, &event)
        .await
        .json()
        .await
        .unwrap();
    let listed = app.get_with_key("/v1/events", &acme.key).await;
    assert_eq!(listed.status(), 200);
    let listed_bytes = listed.bytes().await.unwrap().len() as i64;
    let missing = app
        .get_with_key(&format!("/v1/insights/{}", uuid::Uuid::nil()), &acme.key)
        .await;
    assert_eq!(missing.status(), 404);
    app.shutdown().await;

    let admin = app.db.admin().await;
    let logged = async |method: &str, endpoint: &str| -> (Option<Value>, Value) {
        let row = admin
            .query_one(
                "SELECT request_body, response_body FROM logs WHERE method = $1 AND endpoint = $2",
                &[&method, &endpoint],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    let (request, response) = logged("POST", "/v1/events").await;
    assert_eq!(request, Some(event));
    assert_eq!(response, created);
    let (request, response) = logged("GET", "/v1/events").await;
    assert_eq!(request, None);
    assert_eq!(response, json!({"truncated": true, "bytes": listed_bytes}));
    let (_, response) = logged("GET", &format!("/v1/insights/{}", uuid::Uuid::nil())).await;
    assert_eq!(response["code"], "not-found");
}
