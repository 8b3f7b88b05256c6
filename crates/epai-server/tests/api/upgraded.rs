//! A database from before monthly partitions (migration 8), with months of rows, upgraded in
//! place: the API serves the old rows as before.

use epai_store::testing::TestDatabase;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, partner_on};

#[tokio::test]
async fn rows_from_before_the_partitioning_upgrade_are_served_through_the_api() {
    let db = TestDatabase::migrated_to(8).await;
    let acme = partner_on(&db, "Acme").await;
    let other = partner_on(&db, "Other").await;
    let admin = db.admin().await;
    for partner in [acme.partner_id, other.partner_id] {
        admin
            .execute(
                "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, occurred_at, created_at)
                 SELECT $1, 'page_view', '{}', 'api', '1', now() - make_interval(days => d), now() - make_interval(days => d)
                 FROM generate_series(0, 89) AS d",
                &[&partner],
            )
            .await
            .unwrap();
        admin
            .execute(
                "INSERT INTO logs (partner_id, endpoint, method, status, duration, created_at)
                 SELECT $1, '/v1/events', 'POST', 202, 3, now() - make_interval(days => d)
                 FROM generate_series(0, 89) AS d",
                &[&partner],
            )
            .await
            .unwrap();
    }
    let old_events: Vec<Uuid> = admin
        .query(
            "SELECT id FROM ingestion_events WHERE partner_id = $1 ORDER BY occurred_at DESC, id DESC",
            &[&acme.partner_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.run_with_cluster_lock(epai_store::migrate(db.target()))
        .await
        .unwrap();

    let app = TestApp::spawn_on(db).await;
    let mut listed = Vec::new();
    let mut path = "/v1/events?limit=100".to_owned();
    loop {
        let page: Value = app
            .get_with_key(&path, &acme.key)
            .await
            .json()
            .await
            .unwrap();
        listed.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().parse::<Uuid>().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        listed, old_events,
        "every old event, newest first, acme's only"
    );

    let usage: Value = app
        .get_with_key("/v1/usage?days=30", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    let counted: i64 = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 30, "{usage}");

    let logs: Value = app
        .get_with_key("/v1/logs?limit=1000", &acme.key)
        .await
        .json()
        .await
        .unwrap();
    let old_logs = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["method"] == "POST")
        .count();
    assert_eq!(old_logs, 90, "{logs}");
}
