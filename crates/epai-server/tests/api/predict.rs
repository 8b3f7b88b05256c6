//! Synchronous predictions from supplied inputs and from the partner's own events.

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};

#[tokio::test]
async fn a_supplied_series_is_forecast_with_intervals() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let series: Vec<Value> = (0..70)
        .map(|day| {
            let date =
                chrono::NaiveDate::from_ymd_opt(2026, 8, 1).unwrap() + chrono::Days::new(day);
            let weekend = matches!(day % 7, 5 | 6);
            json!({"date": date, "value": if weekend { 180 + day } else { 100 + day }})
        })
        .collect();
    let response = app
        .post_json(
            "/v1/models/event_volume_forecast/predict",
            &acme.key,
            &json!({"series": series, "horizon": 14, "level": [80, 95]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let points = body["details"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 14);
    assert_eq!(points[0]["date"], "2026-10-10");
    for point in points {
        let intervals = point["intervals"].as_array().unwrap();
        assert_eq!(intervals.len(), 2);
        let value = point["value"].as_f64().unwrap();
        let lower = intervals[1]["lower"].as_f64().unwrap();
        let upper = intervals[1]["upper"].as_f64().unwrap();
        assert!(lower <= value && value <= upper, "{point}");
    }
    let confidence = body["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));

    let short = app
        .post_json(
            "/v1/models/event_volume_forecast/predict",
            &acme.key,
            &json!({"series": [{"date": "2026-08-01", "value": 1}]}),
        )
        .await;
    assert_eq!(short.status(), 422);
    for bad in [
        json!({"horizon": 7}),
        json!({"series": "x"}),
        json!({"series": [], "colour": 1}),
    ] {
        let response = app
            .post_json("/v1/models/event_volume_forecast/predict", &acme.key, &bad)
            .await;
        problem(response, 400, "validation/invalid-request").await;
    }
    problem(
        app.post_json("/v1/models/no_such_model/predict", &acme.key, &json!({}))
            .await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn attendance_and_leads_are_learned_from_the_partners_events() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let form = json!({
        "modelType": "attendance_forecast", "venue": "harbour-hall", "eventDate": "2026-12-12",
        "genre": "jazz", "ticketPrice": 40, "marketingBudget": 1500, "venueCapacity": 500
    });
    let without_history = app.post_json("/predict", &acme.key, &form).await;
    assert_eq!(without_history.status(), 422, "nothing to learn from yet");

    let mut events = Vec::new();
    for i in 0..40 {
        let budget = 500 + (i % 8) * 250;
        let fill = 0.4 + f64::from(budget) / 5000.0;
        events.push(json!({"event_type": "event_attendance", "data": {
            "event_id": format!("e{i}"), "venue_id": "harbour-hall", "capacity": 500,
            "attendee_count": (500.0 * fill).round(), "event_date": format!("2026-{:02}-{:02}", 1 + i % 10, 1 + i % 27),
            "genre": if i % 2 == 0 { "jazz" } else { "rock" }, "ticket_price": 40, "marketing_budget": budget
        }}));
    }
    for i in 0..80 {
        let engaged = i % 2 == 0;
        events.push(json!({"event_type": "lead", "data": {
            "leadId": format!("l{i}"), "email": format!("l{i}@x.test"),
            "attributes": {"engagement_score": if engaged { 80 + i % 15 } else { 10 + i % 15 }}
        }, "timestamp": "2026-11-01T10:00:00Z"}));
        if engaged && i % 5 != 0 {
            events.push(json!({"event_type": "sales_transaction", "data": {"userId": format!("l{i}"), "value": 99},
                               "timestamp": "2026-11-03T10:00:00Z"}));
        }
    }
    let stored = app
        .post_json("/v1/events/batch", &acme.key, &json!({"events": events}))
        .await;
    assert_eq!(stored.status(), 202);

    let response = app
        .post_json("/functions/v1/predict", &acme.key, &form)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert!(
        data["requestId"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .is_ok()
    );
    let attendees = data["prediction"].as_f64().unwrap();
    // The planted fill rate at a 1500 budget is 0.7: 350 of 500.
    assert!((300.0..=400.0).contains(&attendees), "{attendees}");
    assert!(!data["explanation"].as_str().unwrap().is_empty());
    assert!(data["timestamp"].is_string());

    let lead = |engagement: u32| {
        json!({"modelType": "lead_scoring", "customerEmail": "new@x.test", "customerName": "New",
               "age": 40, "location": "Lisbon", "engagementScore": engagement, "previousPurchases": 0,
               "websiteVisits": 0, "emailOpens": 0, "socialMediaEngagement": 0})
    };
    let hot: Value = app
        .post_json("/predict", &acme.key, &lead(90))
        .await
        .json()
        .await
        .unwrap();
    let cold: Value = app
        .post_json("/predict", &acme.key, &lead(12))
        .await
        .json()
        .await
        .unwrap();
    let (hot, cold) = (
        hot["data"]["prediction"].as_f64().unwrap(),
        cold["data"]["prediction"].as_f64().unwrap(),
    );
    assert!(
        hot > 0.5 && cold < 0.3 && hot > cold,
        "hot {hot}, cold {cold}"
    );

    let unknown = app
        .post_json("/predict", &acme.key, &json!({"modelType": "crystal_ball"}))
        .await;
    problem(unknown, 400, "validation/invalid-request").await;
}

#[tokio::test]
async fn the_partners_own_daily_counts_of_an_event_type_are_forecast() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let today = chrono::Utc::now().date_naive();
    let events: Vec<Value> = (1..=35u64)
        .flat_map(|days_ago| {
            let day = today - chrono::Days::new(days_ago);
            (0..(3 + days_ago % 7)).map(move |n| {
                json!({"event_type": "signup", "data": {"n": n},
                       "timestamp": format!("{day}T12:00:00Z")})
            })
        })
        .collect();
    let stored = app
        .post_json("/v1/events/batch", &acme.key, &json!({"events": events}))
        .await;
    assert_eq!(stored.status(), 202);
    let path = "/v1/models/event_volume_forecast/predict";
    let response = app
        .post_json(
            path,
            &acme.key,
            &json!({"event_type": "signup", "horizon": 7}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let points = body["details"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 7);
    assert_eq!(
        points[0]["date"],
        (today + chrono::Days::new(1)).to_string()
    );

    let unknown = app
        .post_json(path, &acme.key, &json!({"event_type": "refund"}))
        .await;
    problem(unknown, 422, "validation/invalid-request").await;
    let both = app
        .post_json(
            path,
            &acme.key,
            &json!({"event_type": "signup", "series": []}),
        )
        .await;
    problem(both, 400, "validation/invalid-request").await;
}

const CHURN_SCORE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../epai-engine/tests/fixtures/churn_score.onnx"
));

/// What the fixture computes (scripts/make-test-onnx.py).
fn churn_score(recency_days: f64, orders: f64, spend: f64) -> f64 {
    1.0 / (1.0 + (-(0.05 * recency_days - 0.4 * orders - 0.01 * spend + 0.5)).exp())
}

async fn register(
    app: &TestApp,
    name: &str,
    inputs: &[&str],
) -> Result<epai_store::CustomModelRecord, epai_store::StoreError> {
    use sha2::Digest;
    let model = epai_store::NewCustomModel {
        name: name.to_owned(),
        description: Some("Churn probability".to_owned()),
        inputs: inputs.iter().map(|i| (*i).to_owned()).collect(),
        onnx: CHURN_SCORE.to_vec(),
        sha256: sha2::Sha256::digest(CHURN_SCORE)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        metadata: json!({"kind": "onnx", "trigger": "predict",
                         "inputs": inputs.iter().map(|i| (*i, "number")).collect::<std::collections::BTreeMap<_, _>>()}),
    };
    app.db
        .store()
        .as_service_role(async |s| s.register_custom_model(&model, chrono::Utc::now()).await)
        .await
}

#[tokio::test]
async fn a_registered_onnx_model_predicts_from_its_declared_inputs() {
    let app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    let path = "/v1/models/churn_score/predict";
    let inputs = json!({"inputs": {"recency_days": 30, "orders": 2, "spend": 40.5}});
    problem(
        app.post_json(path, &acme.key, &inputs).await,
        404,
        "not-found",
    )
    .await;

    let registered = register(&app, "churn_score", &["recency_days", "orders", "spend"])
        .await
        .unwrap();
    assert_eq!(registered.version, 1);
    let models: Value = app
        .get_with_key("/v1/models", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    let listed = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "churn_score")
        .unwrap_or_else(|| panic!("not in the catalogue: {models}"));
    assert_eq!(listed["metadata"]["kind"], "onnx");

    for _ in 0..2 {
        let response = app.post_json(path, &acme.key, &inputs).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let expected = churn_score(30.0, 2.0, 40.5);
        assert!(
            (body["prediction"].as_f64().unwrap() - expected).abs() < 1e-5,
            "{body} vs {expected}"
        );
        assert_eq!(body["confidence"], Value::Null);
        assert_eq!(body["details"]["version"], 1);
        assert_eq!(
            body["details"]["outputs"]["churn"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    for bad in [
        json!({"inputs": {"recency_days": 30, "orders": 2}}),
        json!({"inputs": {"recency_days": 30, "orders": 2, "spend": 1, "age": 40}}),
        json!({"inputs": {"recency_days": "soon", "orders": 2, "spend": 1}}),
        json!({"inputs": [30, 2, 1]}),
        json!({"recency_days": 30, "orders": 2, "spend": 1}),
    ] {
        problem(
            app.post_json(path, &acme.key, &bad).await,
            400,
            "validation/invalid-request",
        )
        .await;
    }

    // A new registration under the same name replaces the cached model at once.
    let renamed = register(
        &app,
        "churn_score",
        &["days_since_visit", "orders", "spend"],
    )
    .await
    .unwrap();
    assert_eq!(renamed.version, 2);
    problem(
        app.post_json(path, &acme.key, &inputs).await,
        400,
        "validation/invalid-request",
    )
    .await;
    let response = app
        .post_json(
            path,
            &acme.key,
            &json!({"inputs": {"days_since_visit": 0, "orders": 0, "spend": 0}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"]["version"], 2);
    assert!((body["prediction"].as_f64().unwrap() - churn_score(0.0, 0.0, 0.0)).abs() < 1e-5);

    let builtin = register(&app, "lead_scoring", &["a", "b", "c"]).await;
    assert!(
        matches!(builtin, Err(epai_store::StoreError::Conflict(_))),
        "{builtin:?}"
    );
}
