//! The database misbehaving under the API: statements past their timeout, a database that
//! refuses writes (what a full disk or a failover to a standby looks like), a full ingest
//! queue. Each answers a clear 503 problem, bounded in time, and the server recovers by itself.

use std::time::{Duration, Instant};

use epai_server::ServerSettings;
use epai_store::testing::TestDatabase;
use epai_store::{IngestOptions, StoreOptions};
use serde_json::json;

use crate::helpers::{TestApp, problem};

fn event(i: usize) -> serde_json::Value {
    json!({"event_type": "tick", "data": {"i": i}})
}

async fn waiting_locks(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_locks
             WHERE NOT granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn eventually_locked(admin: &tokio_postgres::Client, waiting: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while waiting_locks(admin).await < waiting {
        assert!(Instant::now() < deadline, "nothing waits for the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_statement_past_its_timeout_answers_503_and_the_next_request_succeeds() {
    let options = StoreOptions {
        statement_timeout: Some(Duration::from_millis(300)),
        ..StoreOptions::default()
    };
    let app = TestApp::spawn_with_store_options(
        TestDatabase::migrated().await,
        &options,
        ServerSettings::default(),
    )
    .await;
    let acme = app.partner("Acme").await;
    let mut admin = app.db.admin().await;
    // Something holds the events table longer than any statement may wait.
    let blocker = admin.transaction().await.unwrap();
    blocker
        .batch_execute("LOCK TABLE ingestion_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let write = app.post_json("/v1/events", &acme.key, &event(1)).await;
    assert_eq!(write.headers()["retry-after"], "1");
    let body = problem(write, 503, "service/timeout").await;
    assert_eq!(
        body["detail"],
        "the database did not answer in time; retry shortly"
    );
    let read = app.get_with_key("/v1/events", &acme.key).await;
    problem(read, 503, "service/timeout").await;

    blocker.rollback().await.unwrap();
    let write = app.post_json("/v1/events", &acme.key, &event(2)).await;
    assert_eq!(write.status(), 202);
    assert_eq!(
        app.get_with_key("/v1/events", &acme.key).await.status(),
        200
    );
    assert_eq!(
        app.count_rows("ingestion_events", acme.partner_id).await,
        1,
        "the event that timed out was not stored"
    );
}

/// Ends every session the server has on its database, and waits until they are gone (new
/// ones it opens meanwhile are left alone).
pub(crate) async fn terminate_server_sessions(app: &TestApp, admin: &tokio_postgres::Client) {
    let terminated_at: chrono::DateTime<chrono::Utc> =
        admin.query_one("SELECT now()", &[]).await.unwrap().get(0);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_start <= $2",
            &[&app.db.name(), &terminated_at],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_start <= $2",
                &[&app.db.name(), &terminated_at],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} sessions outlived termination"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_database_refusing_writes_gets_503s_for_them_while_reads_go_on_and_logs_wait() {
    let mut app = TestApp::spawn().await;
    let acme = app.partner("Acme").await;
    assert_eq!(
        app.post_json("/v1/events", &acme.key, &event(0))
            .await
            .status(),
        202
    );
    let admin = app.db.admin().await;
    // The nearest testable stand-in for a full disk: the database accepts no writes. Sessions
    // read database settings when they start, so the server's sessions are ended and it has
    // to reconnect (as after a failover).
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            app.db.name()
        ))
        .await
        .unwrap();
    terminate_server_sessions(&app, &admin).await;

    let mut refused = 0;
    for i in 1..=5 {
        let write = app.post_json("/v1/events", &acme.key, &event(i)).await;
        assert!(write.headers().contains_key("retry-after"));
        let body = problem(write, 503, "service/unavailable").await;
        assert_eq!(
            body["detail"], "the service is temporarily unavailable; retry shortly",
            "no database text in the answer"
        );
        refused += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = app.get_with_key("/v1/events", &acme.key).await;
        if read.status() == 200 {
            let body: serde_json::Value = read.json().await.unwrap();
            assert_eq!(body["data"].as_array().unwrap().len(), 1);
            break;
        }
        problem(read, 503, "service/unavailable").await;
        assert!(Instant::now() < deadline, "reads never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            app.db.name()
        ))
        .await
        .unwrap();
    terminate_server_sessions(&app, &admin).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .post_json("/v1/events", &acme.key, &event(99))
        .await
        .status()
        != 202
    {
        assert!(Instant::now() < deadline, "writes never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await;
    // The request logs of the refused writes waited in the server until they could be stored.
    let logged_refusals: i64 = admin
        .query_one(
            "SELECT count(*) FROM logs WHERE endpoint = '/v1/events' AND method = 'POST' AND status = 503",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        logged_refusals >= refused,
        "{logged_refusals} of {refused} refusals logged"
    );
    assert!(app.count_rows("ingestion_events", acme.partner_id).await >= 2);
}

#[tokio::test]
async fn a_full_ingest_queue_answers_503_with_retry_after_and_loses_nothing_it_accepted() {
    let settings = ServerSettings {
        ingest: IngestOptions {
            writers: 1,
            queue_capacity: 1,
            ..IngestOptions::default()
        },
        ..ServerSettings::default()
    };
    let app = TestApp::spawn_with(TestDatabase::migrated().await, settings).await;
    let acme = app.partner("Acme").await;
    let mut admin = app.db.admin().await;
    let blocker = admin.transaction().await.unwrap();
    blocker
        .batch_execute("LOCK TABLE ingestion_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let watcher = app.db.admin().await;
    let post = |i: usize| {
        let request = app
            .client
            .post(app.url("/v1/events"))
            .header("apikey", &acme.key)
            .json(&event(i));
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    // The writer takes the first request and waits for the table; the queue holds one more.
    let first = post(1);
    eventually_locked(&watcher, 1).await;
    let (second, third) = (post(2), post(3));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !second.is_finished() && !third.is_finished() {
        assert!(Instant::now() < deadline, "no request was turned away");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (turned_away, queued) = if second.is_finished() {
        (second, third)
    } else {
        (third, second)
    };
    let turned_away = turned_away.await.unwrap();
    assert!(turned_away.headers().contains_key("retry-after"));
    problem(turned_away, 503, "service/unavailable").await;

    blocker.rollback().await.unwrap();
    assert_eq!(first.await.unwrap().status(), 202);
    assert_eq!(queued.await.unwrap().status(), 202);
    assert_eq!(
        app.count_rows("ingestion_events", acme.partner_id).await,
        2,
        "both accepted requests are stored"
    );
}
