use serde_json::{Value, json};

use crate::helpers::{TestApp, TestPartner, problem};

async fn insert_insight(
    app: &TestApp,
    partner: &TestPartner,
    model: uuid::Uuid,
    title: &str,
    minutes_ago: i32,
) -> uuid::Uuid {
    app.db
        .admin()
        .await
        .query_one(
            "INSERT INTO insights (partner_id, model_id, content, created_at)
             VALUES ($1, $2, $3, now() - make_interval(mins => $4)) RETURNING id",
            &[
                &partner.partner_id,
                &model,
                &json!({"title": title, "description": "d", "confidence": 0.8, "recommendation": "r", "series": [1, 2]}),
                &minutes_ago,
            ],
        )
        .await
        .unwrap()
        .get(0)
}

async fn insert_model(app: &TestApp, name: &str) -> uuid::Uuid {
    app.db
        .admin()
        .await
        .query_one(
            "INSERT INTO models (name, description, version, status, metadata) VALUES ($1, 'desc', '1.0', 'active', '{\"inputs\": []}')
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn events_page_newest_first_by_cursor_and_filter_by_type() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let other = app.partner("Other").await;
    let events: Vec<Value> = (0..7)
        .map(|i| {
            json!({"event_type": if i % 2 == 0 { "even" } else { "odd" }, "data": {"i": i},
                        "timestamp": format!("2026-11-0{}T10:00:00Z", i + 1)})
        })
        .collect();
    assert_eq!(
        app.post_json("/v1/events/batch", &acme.key, &json!({"events": events}))
            .await
            .status(),
        202
    );
    app.post_json(
        "/v1/events",
        &other.key,
        &json!({"event_type": "even", "data": {"i": 99}}),
    )
    .await;

    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=3".to_owned();
    loop {
        let page: Value = app
            .get_with_key(&path, &acme.key)
            .await
            .json()
            .await
            .unwrap();
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["i"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [6, 5, 4, 3, 2, 1, 0],
        "all of A's events, newest first, once"
    );

    let odd: Value = app
        .get_with_key("/v1/events?type=odd", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    let odd: Vec<i64> = odd["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(odd, [5, 3, 1]);
    let window: Value = app
        .get_with_key(
            "/v1/events?since=2026-11-03T00:00:00Z&until=2026-11-05T00:00:00Z",
            &acme.key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(window["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn insights_list_page_and_stay_within_the_partner() {
    let mut app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let rival = app.partner("Rival").await;
    let forecast = insert_model(&app, "event_volume_forecast").await;
    let anomaly = insert_model(&app, "anomaly_detection").await;
    let mut mine = Vec::new();
    for i in 0..5 {
        let model = if i < 3 { forecast } else { anomaly };
        mine.push(insert_insight(&app, &acme, model, &format!("A{i}"), 10 - i).await);
    }
    let theirs = insert_insight(&app, &rival, forecast, "B0", 1).await;

    let list: Value = app
        .get_with_key("/v1/insights?limit=2", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    let titles = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["content"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(titles(&list), ["A4", "A3"]);
    assert_eq!(list["total"], 5);
    let cursor = list["next_cursor"].as_str().unwrap();
    let next: Value = app
        .get_with_key(&format!("/v1/insights?limit=2&cursor={cursor}"), &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(&next), ["A2", "A1"]);
    let offset: Value = app
        .get_with_key("/v1/insights?limit=2&offset=4", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(&offset), ["A0"]);
    let by_model: Value = app
        .get_with_key("/v1/insights?model=anomaly_detection", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(&by_model), ["A4", "A3"]);
    assert_eq!(by_model["data"][0]["model_name"], "anomaly_detection");

    let one: Value = app
        .get_with_key(&format!("/v1/insights/{}", mine[0]), &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["content"]["title"], "A0");

    // B's insight does not exist for A, and asking is recorded.
    let probe = app
        .get_with_key(&format!("/v1/insights/{theirs}"), &acme.key)
        .await;
    problem(probe, 404, "not-found").await;
    let public = app
        .post_json(
            "/get-public-insight",
            &acme.key,
            &json!({"insight_id": theirs.to_string()}),
        )
        .await;
    problem(public, 404, "not-found").await;
    let admin = app.db.admin().await;
    app.shutdown().await;
    let recorded: i64 = admin
        .query_one(
            "SELECT count(*) FROM security_events WHERE event_type = 'cross_tenant_access' AND partner_id = $1 AND details->>'id' = $2",
            &[&acme.partner_id, &theirs.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 2);
}

#[tokio::test]
async fn one_partners_key_never_reads_another_partners_data() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let rival = app.partner("Rival").await;
    app.post_json(
        "/v1/events",
        &acme.key,
        &json!({"event_type": "secret_plan", "data": {"x": 1}}),
    )
    .await;
    let model = insert_model(&app, "m").await;
    insert_insight(&app, &acme, model, "acme only", 1).await;
    app.db
        .admin()
        .await
        .execute(
            "INSERT INTO logs (partner_id, endpoint, method, status) VALUES ($1, '/acme-only', 'GET', 200)",
            &[&acme.partner_id],
        )
        .await
        .unwrap();
    for path in [
        "/v1/events",
        "/v1/insights",
        "/v1/logs",
        "/v1/usage?days=1",
        "/get-insights",
    ] {
        let body = app
            .get_with_key(path, &rival.key)
            .await
            .text()
            .await
            .unwrap();
        for leak in [
            "secret_plan",
            "acme only",
            "/acme-only",
            &acme.partner_id.to_string(),
        ] {
            assert!(!body.contains(leak), "{path} leaked {leak}: {body}");
        }
    }
    let usage: Value = app
        .get_with_key("/v1/usage?days=1", &rival.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["total_events"], 0);
    let usage: Value = app
        .get_with_key("/v1/usage?days=1", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["total_events"], 1);
    assert_eq!(usage["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn models_usage_and_logs_read_through_the_seed_functions() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    // Paging is checked on a catalogue of known size: without the built-in models.
    app.db
        .admin()
        .await
        .execute("DELETE FROM models", &[])
        .await
        .unwrap();
    for i in 0..8 {
        insert_model(&app, &format!("model_{i}")).await;
    }
    let models: Value = app
        .get_with_key("/v1/models", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 8);
    assert_eq!(models["data"][0]["name"], "model_0");

    let page1: Value = app
        .get_with_key("/get-models", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page1["count"], 6);
    assert_eq!(page1["models"][0]["model_name"], "model_0");
    assert_eq!(page1["models"][0]["model_version"], "1.0");
    let page2: Value = app
        .post_json("/functions/v1/get-models", &acme.key, &json!({"page": 1}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["count"], 2);

    let admin = app.db.admin().await;
    for i in 0..3 {
        admin
            .execute(
                "INSERT INTO logs (partner_id, endpoint, method, status, duration, created_at) VALUES ($1, $2, 'POST', 202, 4, now() - make_interval(secs => $3))",
                &[&acme.partner_id, &format!("/v1/e{i}"), &f64::from(i)],
            )
            .await
            .unwrap();
    }
    let logs: Value = app
        .get_with_key("/v1/logs?limit=2&offset=1", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    let endpoints: Vec<&str> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, ["/v1/e1", "/v1/e2"]);

    let usage: Value = app
        .get_with_key("/v1/usage", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["days"], 30);
    assert_eq!(usage["data"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn the_original_insights_path_keeps_its_shape() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let model = insert_model(&app, "attendance_forecast").await;
    for i in 0..12 {
        insert_insight(&app, &acme, model, &format!("T{i}"), i).await;
    }
    let body: Value = app
        .get_with_key("/functions/v1/get-insights", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["count"], 10, "default limit 10");
    assert_eq!(body["total"], 12);
    let first = &body["insights"][0];
    assert_eq!(first["model_id"], model.to_string());
    assert_eq!(
        first["content"],
        json!({"title": "T0", "description": "d", "confidence": 0.8, "recommendation": "r"})
    );
    assert!(first["created_at"].is_string());
    let rest: Value = app
        .get_with_key("/get-insights?limit=5&offset=10", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["count"], 2);
}
