//! The insight job queue: enqueue and debounce, exclusive claims, visibility timeouts, retries,
//! and jobs caused by ingestion. Time is always given, never read from the clock.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use epai_domain::PartnerId;
use epai_store::testing::TestDatabase;
use epai_store::{
    ClaimedJob, FailedJob, IngestOptions, IngestWriter, NewEvent, RecomputeOnIngest, Store,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::insert_partner;

const VISIBILITY: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn enqueue(store: &Store, partner: PartnerId, model: &str, run_after: DateTime<Utc>) {
    store
        .as_service_role(async |s| s.enqueue(partner, model, run_after, t0()).await)
        .await
        .unwrap();
}

async fn claim(store: &Store, worker: &str, now: DateTime<Utc>) -> Option<ClaimedJob> {
    store
        .as_service_role(async |s| s.claim(worker, now, VISIBILITY).await)
        .await
        .unwrap()
}

async fn complete(store: &Store, job: &ClaimedJob, now: DateTime<Utc>) -> bool {
    store
        .as_service_role(async |s| s.complete(job, now).await)
        .await
        .unwrap()
}

async fn fail(store: &Store, job: &ClaimedJob, error: &str, now: DateTime<Utc>) -> FailedJob {
    store
        .as_service_role(async |s| s.fail(job, error, now).await)
        .await
        .unwrap()
}

/// `(state, attempt)` of every job of `partner`, oldest first.
async fn jobs_of(db: &TestDatabase, partner: PartnerId) -> Vec<(String, i32)> {
    db.admin()
        .await
        .query(
            "SELECT state::text, attempt FROM insight_jobs WHERE partner_id = $1 ORDER BY id",
            &[&partner.as_uuid()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_job_is_claimed_when_due_and_completed_once_by_its_worker() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = insert_partner(&db.admin().await, "acme").await;
    enqueue(&store, acme.partner, "forecast", t0() + secs(5)).await;

    assert_eq!(claim(&store, "w1", t0()).await, None, "not due yet");
    let job = claim(&store, "w1", t0() + secs(5)).await.expect("due job");
    assert_eq!(
        (job.partner_id, job.model.as_str(), job.attempt),
        (acme.partner, "forecast", 1)
    );
    assert_eq!(job.locked_until, t0() + secs(65));
    assert_eq!(claim(&store, "w2", t0() + secs(6)).await, None, "held");

    assert!(complete(&store, &job, t0() + secs(7)).await);
    assert!(!complete(&store, &job, t0() + secs(8)).await, "only once");
    let finished: Option<DateTime<Utc>> = db
        .admin()
        .await
        .query_one(
            "SELECT finished_at FROM insight_jobs WHERE id = $1",
            &[&job.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(finished, Some(t0() + secs(7)));
    assert_eq!(jobs_of(&db, acme.partner).await, [("completed".into(), 1)]);
    assert_eq!(claim(&store, "w1", t0() + secs(3600)).await, None);
}

#[tokio::test]
async fn enqueueing_while_a_job_waits_adds_nothing_and_only_moves_it_earlier() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = insert_partner(&db.admin().await, "acme").await;
    for i in 0..100 {
        enqueue(&store, acme.partner, "forecast", t0() + secs(10 + i)).await;
    }
    enqueue(&store, acme.partner, "anomalies", t0() + secs(10)).await;
    assert_eq!(jobs_of(&db, acme.partner).await.len(), 2);

    enqueue(&store, acme.partner, "forecast", t0() + secs(2)).await;
    assert_eq!(claim(&store, "w", t0() + secs(1)).await, None);
    let job = claim(&store, "w", t0() + secs(2))
        .await
        .expect("moved earlier");
    assert_eq!(job.model, "forecast");

    // Events during a run queue exactly one follow-up run.
    for _ in 0..10 {
        enqueue(&store, acme.partner, "forecast", t0() + secs(3)).await;
    }
    let forecast_states: Vec<String> = db
        .admin()
        .await
        .query(
            "SELECT state::text FROM insight_jobs WHERE model = 'forecast' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(forecast_states, ["running", "available"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_claim_the_same_job() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let store = db.store();
    let mut expected = HashSet::new();
    for p in 0..5 {
        let partner = insert_partner(&admin, &format!("p{p}")).await.partner;
        for m in 0..10 {
            enqueue(&store, partner, &format!("model-{m}"), t0()).await;
            expected.insert((partner, format!("model-{m}")));
        }
    }
    let drain = async |worker: &'static str, store: Store| {
        let mut done = Vec::new();
        while let Some(job) = claim(&store, worker, t0()).await {
            assert!(
                complete(&store, &job, t0()).await,
                "{worker} lost job {}",
                job.id
            );
            done.push(job);
            tokio::task::yield_now().await;
        }
        done
    };
    let (a, b) = tokio::join!(
        tokio::spawn(drain("a", db.store())),
        tokio::spawn(drain("b", db.store()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(!a.is_empty() && !b.is_empty(), "both workers took part");
    let ids: Vec<i64> = a.iter().chain(&b).map(|j| j.id).collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        50,
        "a job ran twice"
    );
    let done: HashSet<(PartnerId, String)> = a
        .iter()
        .chain(&b)
        .map(|j| (j.partner_id, j.model.clone()))
        .collect();
    assert_eq!(done, expected);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_claimed_again_after_the_visibility_timeout() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = insert_partner(&db.admin().await, "acme").await;
    enqueue(&store, acme.partner, "forecast", t0()).await;

    let abandoned = claim(&store, "crashed", t0()).await.unwrap();
    assert_eq!(claim(&store, "rescuer", t0() + secs(59)).await, None);
    let job = claim(&store, "rescuer", t0() + secs(60))
        .await
        .expect("reclaimed");
    assert_eq!((job.id, job.attempt), (abandoned.id, 2));

    assert!(
        !complete(&store, &abandoned, t0() + secs(61)).await,
        "no longer its job"
    );
    assert!(complete(&store, &job, t0() + secs(61)).await);
    let errors: serde_json::Value = db
        .admin()
        .await
        .query_one("SELECT errors FROM insight_jobs WHERE id = $1", &[&job.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["worker"], "crashed");
    assert_eq!(errors[0]["attempt"], 1);
}

#[tokio::test]
async fn a_failing_job_is_retried_with_growing_backoff_then_dead_with_every_error() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = insert_partner(&db.admin().await, "acme").await;
    enqueue(&store, acme.partner, "forecast", t0()).await;

    let mut now = t0();
    let mut waits = Vec::new();
    for attempt in 1..=5 {
        let job = claim(&store, "w", now).await.expect("due");
        assert_eq!(job.attempt, attempt);
        match fail(&store, &job, &format!("boom {attempt}"), now).await {
            FailedJob::Retry { at } => {
                assert_eq!(claim(&store, "w", at - secs(1)).await, None, "backing off");
                waits.push((at - now).num_seconds());
                now = at;
            }
            FailedJob::Dead => assert_eq!(attempt, 5, "dead before the last attempt"),
            FailedJob::NotHeld => panic!("the worker held the job"),
        }
    }
    assert_eq!(waits, [11, 26, 91, 266]);
    assert_eq!(claim(&store, "w", now + secs(86_400)).await, None);
    let row = db
        .admin()
        .await
        .query_one(
            "SELECT state::text, errors, finished_at FROM insight_jobs WHERE partner_id = $1",
            &[&acme.partner.as_uuid()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "dead");
    let errors: serde_json::Value = row.get(1);
    let messages: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["boom 1", "boom 2", "boom 3", "boom 4", "boom 5"]);
    assert_eq!(row.get::<_, Option<DateTime<Utc>>>(2), Some(now));
}

#[tokio::test]
async fn a_failed_job_absorbs_the_run_queued_while_it_ran() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = insert_partner(&db.admin().await, "acme").await;
    enqueue(&store, acme.partner, "forecast", t0()).await;
    let job = claim(&store, "w", t0()).await.unwrap();
    enqueue(&store, acme.partner, "forecast", t0() + secs(1)).await;

    assert!(matches!(
        fail(&store, &job, "boom", t0() + secs(2)).await,
        FailedJob::Retry { .. }
    ));
    assert_eq!(jobs_of(&db, acme.partner).await, [("retryable".into(), 1)]);
}

#[tokio::test]
async fn a_job_abandoned_on_its_last_attempt_is_buried() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = insert_partner(&db.admin().await, "acme").await;
    enqueue(&store, acme.partner, "forecast", t0()).await;
    db.admin()
        .await
        .execute("UPDATE insight_jobs SET max_attempts = 1", &[])
        .await
        .unwrap();
    claim(&store, "crashed", t0()).await.unwrap();

    assert_eq!(
        claim(&store, "w", t0() + secs(120)).await,
        None,
        "no attempt left"
    );
    let buried = store
        .as_service_role(async |s| s.bury_abandoned_jobs(t0() + secs(120)).await)
        .await
        .unwrap();
    assert_eq!(buried, 1);
    assert_eq!(jobs_of(&db, acme.partner).await, [("dead".into(), 1)]);
}

fn event(partner: PartnerId, event_type: &str, occurred_at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        partner_id: partner,
        event_type: event_type.into(),
        data: json!({}).into(),
        source: "test".into(),
        version: "1".into(),
        metadata: None,
        occurred_at,
        created_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_events_queues_one_job_per_partner_and_model() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let mut partners = Vec::new();
    for i in 0..10 {
        partners.push(insert_partner(&admin, &format!("p{i}")).await.partner);
    }
    let store = db.store().recomputing_on_ingest(RecomputeOnIngest {
        models: vec!["forecast".into(), "anomalies".into()],
        debounce: Duration::from_secs(1),
    });
    let (writer, writers) = IngestWriter::start(store, IngestOptions::default());
    let mut requests = tokio::task::JoinSet::new();
    // Concurrent requests of many partners: commits mix partners, and the writers race to
    // add the same new jobs.
    for request in 0..100 {
        let writer = writer.clone();
        let partner = partners[request % partners.len()];
        requests.spawn(async move {
            let events = (0..100)
                .map(|_| event(partner, "click", Utc::now()))
                .collect();
            writer.write(events).await
        });
    }
    while let Some(done) = requests.join_next().await {
        done.unwrap().unwrap();
    }
    drop(writer);
    writers.join_all().await;

    let counts = admin
        .query(
            "SELECT (SELECT count(*) FROM ingestion_events), (SELECT count(*) FROM insight_jobs),
                    (SELECT count(DISTINCT (partner_id, model)) FROM insight_jobs)",
            &[],
        )
        .await
        .unwrap();
    let (events, jobs, pairs): (i64, i64, i64) =
        (counts[0].get(0), counts[0].get(1), counts[0].get(2));
    assert_eq!(events, 10_000);
    assert_eq!(
        (jobs, pairs),
        (20, 20),
        "one waiting job per partner and model"
    );
    assert_eq!(jobs_of(&db, partners[0]).await.len(), 2);
}

#[tokio::test]
async fn partners_cannot_read_the_queue() {
    let db = TestDatabase::migrated().await;
    let mut admin = db.admin().await;
    let acme = insert_partner(&admin, "acme").await;
    enqueue(&db.store(), acme.partner, "forecast", t0()).await;
    let tx = crate::support::begin_as(&mut admin, Some(acme.user)).await;
    let refused = tx.query("SELECT * FROM insight_jobs", &[]).await;
    assert_eq!(
        refused.unwrap_err().code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

#[tokio::test]
async fn stale_partners_get_a_recomputation_and_fresh_ones_do_not() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let store = db.store();
    let fresh = insert_partner(&admin, "fresh").await.partner;
    let stale = insert_partner(&admin, "stale").await.partner;
    let never = insert_partner(&admin, "never").await.partner;
    let silent = insert_partner(&admin, "silent").await.partner;
    let events: Vec<NewEvent> = [fresh, stale, never]
        .iter()
        .map(|p| event(*p, "click", t0()))
        .collect();
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();
    let now = t0() + secs(7200);
    for (partner, finished) in [(fresh, now - secs(600)), (stale, now - secs(4000))] {
        enqueue(&store, partner, "forecast", t0()).await;
        let job = claim(&store, "w", t0()).await.unwrap();
        assert!(complete(&store, &job, finished).await);
    }

    let models = vec!["forecast".to_owned()];
    let hour = Duration::from_secs(3600);
    let added = store
        .as_service_role(async |s| s.enqueue_stale(&models, hour, now).await)
        .await
        .unwrap();
    assert_eq!(added, 2);
    for (partner, jobs) in [(fresh, 1), (stale, 2), (never, 1), (silent, 0)] {
        assert_eq!(jobs_of(&db, partner).await.len(), jobs);
    }
    let again = store
        .as_service_role(async |s| s.enqueue_stale(&models, hour, now).await)
        .await
        .unwrap();
    assert_eq!(again, 0, "a waiting job is not queued twice");

    let pruned = store
        .as_service_role(async |s| s.prune_finished_jobs(Duration::from_secs(1000), now).await)
        .await
        .unwrap();
    assert_eq!(pruned, 1, "only the old completed job goes");
}
