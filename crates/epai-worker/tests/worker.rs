//! The worker against a real database: jobs from ingestion become insights, failures are
//! retried, a dead worker's job is taken over, and concurrent workers share the queue.
//! Time is injected; the queue is drained with `run_one`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use epai_domain::{Email, PartnerId, PartnerName};
use epai_store::testing::TestDatabase;
use epai_store::{NewEvent, NewInsight, NewPartner, PartnerFeatures, RecomputeOnIngest, Store};
use epai_worker::{
    InsightModel, ModelError, Models, Outcome, Scheduler, SchedulerOptions, Worker, WorkerOptions,
};
use serde_json::json;
use uuid::Uuid;

/// Totals each event type over the loaded days: one insight per type.
struct EventTotals {
    name: &'static str,
    runs: Arc<Mutex<Vec<PartnerId>>>,
}

impl EventTotals {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            runs: Arc::default(),
        }
    }
}

impl InsightModel for EventTotals {
    fn name(&self) -> &'static str {
        self.name
    }

    fn compute(
        &self,
        features: &PartnerFeatures,
        _now: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        self.runs.lock().unwrap().push(features.partner_id);
        Ok(features
            .daily_counts
            .iter()
            .map(|series| NewInsight {
                subject: series.event_type.clone(),
                content: json!({
                    "title": format!("{} events", series.event_type),
                    "description": "events in the last 90 days",
                    "confidence": 1.0,
                    "recommendation": "none",
                    "total": series.counts.iter().sum::<i64>(),
                }),
                metadata: None,
            })
            .collect())
    }
}

struct Broken;

impl InsightModel for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn compute(
        &self,
        _: &PartnerFeatures,
        _: DateTime<Utc>,
    ) -> Result<Vec<NewInsight>, ModelError> {
        Err("not enough coffee".into())
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

const OPTIONS: WorkerOptions = WorkerOptions {
    visibility: Duration::from_secs(60),
    idle_poll: Duration::from_secs(1),
};

async fn catalogue(db: &TestDatabase, names: &[&str]) {
    for name in names {
        db.admin()
            .await
            .execute(
                "INSERT INTO models (name, version, status) VALUES ($1, '1', 'active')",
                &[name],
            )
            .await
            .unwrap();
    }
}

async fn partner(store: &Store, name: &str) -> PartnerId {
    let new = NewPartner {
        name: PartnerName::parse(name).unwrap(),
        email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple())).unwrap(),
        password_hash: None,
    };
    store
        .as_service_role(async |s| s.create_partner(&new).await)
        .await
        .unwrap()
        .id
}

async fn ingest(store: &Store, partner: PartnerId, event_type: &str, count: usize) {
    let events: Vec<NewEvent> = (0..count)
        .map(|_| NewEvent {
            id: Uuid::now_v7(),
            partner_id: partner,
            event_type: event_type.into(),
            data: json!({}).into(),
            source: "test".into(),
            version: "1".into(),
            metadata: None,
            occurred_at: t0() - secs(3600),
            created_at: None,
        })
        .collect();
    store
        .as_service_role(async |s| s.insert_events(&events).await)
        .await
        .unwrap();
}

/// `(subject, total)` of every insight of `partner`, by subject.
async fn insights_of(db: &TestDatabase, partner: PartnerId) -> Vec<(String, i64)> {
    db.admin()
        .await
        .query(
            "SELECT subject, (content->>'total')::bigint FROM insights WHERE partner_id = $1 ORDER BY subject",
            &[&partner.as_uuid()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn job_states(db: &TestDatabase) -> Vec<(String, i32)> {
    db.admin()
        .await
        .query(
            "SELECT state::text, attempt FROM insight_jobs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn events_become_an_insight_that_the_next_run_updates_in_place() {
    let db = TestDatabase::migrated().await;
    catalogue(&db, &["totals"]).await;
    // Ingestion queues the job (debounced by 2 s); its time is the clock's, so the worker runs
    // at a time well after it.
    let store = db.store().recomputing_on_ingest(RecomputeOnIngest {
        models: vec!["totals".into()],
        debounce: Duration::from_secs(2),
    });
    let worker = Worker::new(
        store.clone(),
        Models::new().with(EventTotals::new("totals")),
        OPTIONS,
    );
    let acme = partner(&store, "Acme").await;
    assert_eq!(worker.run_one(t0()).await.unwrap(), Outcome::Empty);

    ingest(&store, acme, "click", 3).await;
    ingest(&store, acme, "signup", 1).await;
    let later = Utc::now() + secs(3);
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Empty);
    assert_eq!(
        insights_of(&db, acme).await,
        [("click".into(), 3), ("signup".into(), 1)]
    );
    let first_ids: Vec<Uuid> = db
        .admin()
        .await
        .query("SELECT id FROM insights ORDER BY subject", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    ingest(&store, acme, "click", 2).await;
    let later = Utc::now() + secs(3);
    assert_eq!(worker.run_one(later).await.unwrap(), Outcome::Done);
    assert_eq!(
        insights_of(&db, acme).await,
        [("click".into(), 5), ("signup".into(), 1)],
        "updated, not duplicated"
    );
    let ids: Vec<Uuid> = db
        .admin()
        .await
        .query("SELECT id FROM insights ORDER BY subject", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, first_ids);
    assert_eq!(
        job_states(&db).await,
        [("completed".into(), 1), ("completed".into(), 1)]
    );
}

#[tokio::test]
async fn a_failing_model_leaves_its_error_on_the_job_for_a_retry() {
    let db = TestDatabase::migrated().await;
    catalogue(&db, &["broken"]).await;
    let store = db.store();
    let worker = Worker::new(store.clone(), Models::new().with(Broken), OPTIONS);
    let acme = partner(&store, "Acme").await;
    for model in ["broken", "not_installed"] {
        store
            .as_service_role(async |s| s.enqueue(acme, model, t0(), t0()).await)
            .await
            .unwrap();
    }

    assert_eq!(worker.run_one(t0()).await.unwrap(), Outcome::Failed);
    assert_eq!(worker.run_one(t0()).await.unwrap(), Outcome::Failed);
    assert_eq!(worker.run_one(t0()).await.unwrap(), Outcome::Empty);
    let errors: Vec<String> = db
        .admin()
        .await
        .query(
            "SELECT state::text || ': ' || (errors->0->>'error') FROM insight_jobs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        errors,
        [
            "retryable: the model failed: not enough coffee",
            "retryable: no model named not_installed is installed"
        ]
    );
    assert_eq!(
        worker.run_one(t0() + secs(11)).await.unwrap(),
        Outcome::Failed,
        "retried"
    );
}

#[tokio::test]
async fn a_job_held_by_a_worker_that_died_is_run_after_the_visibility_timeout() {
    let db = TestDatabase::migrated().await;
    catalogue(&db, &["totals"]).await;
    let store = db.store();
    let acme = partner(&store, "Acme").await;
    ingest(&store, acme, "click", 1).await;
    store
        .as_service_role(async |s| s.enqueue(acme, "totals", t0(), t0()).await)
        .await
        .unwrap();
    let died = store
        .as_service_role(async |s| s.claim("died", t0(), Duration::from_secs(60)).await)
        .await
        .unwrap();
    assert!(died.is_some());

    let worker = Worker::new(
        store.clone(),
        Models::new().with(EventTotals::new("totals")),
        OPTIONS,
    );
    assert_eq!(
        worker.run_one(t0() + secs(59)).await.unwrap(),
        Outcome::Empty
    );
    assert_eq!(
        worker.run_one(t0() + secs(60)).await.unwrap(),
        Outcome::Done
    );
    assert_eq!(job_states(&db).await, [("completed".into(), 2)]);
    assert_eq!(insights_of(&db, acme).await, [("click".into(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_run_each_of_fifty_jobs_exactly_once() {
    let db = TestDatabase::migrated().await;
    catalogue(&db, &["first", "second"]).await;
    let store = db.store();
    let first = EventTotals::new("first");
    let second = EventTotals::new("second");
    let runs = [first.runs.clone(), second.runs.clone()];
    let models = Models::new().with(first).with(second);
    let mut partners = Vec::new();
    for i in 0..25 {
        let p = partner(&store, &format!("P{i}")).await;
        for model in ["first", "second"] {
            store
                .as_service_role(async |s| s.enqueue(p, model, t0(), t0()).await)
                .await
                .unwrap();
        }
        partners.push(p);
    }
    let drain = |worker: Worker| async move {
        let mut done = 0;
        loop {
            match worker.run_one(t0()).await.unwrap() {
                Outcome::Done => done += 1,
                Outcome::Empty => return done,
                Outcome::Failed => panic!("no job should fail"),
            }
        }
    };
    let a = tokio::spawn(drain(Worker::new(db.store(), models.clone(), OPTIONS)));
    let b = tokio::spawn(drain(Worker::new(db.store(), models, OPTIONS)));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a + b, 50);
    for runs in runs {
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), 25, "each partner once per model");
        assert_eq!(
            runs.iter().collect::<HashSet<_>>(),
            partners.iter().collect::<HashSet<_>>()
        );
    }
    assert!(
        job_states(&db)
            .await
            .iter()
            .all(|(s, a)| s == "completed" && *a == 1)
    );
}

#[tokio::test]
async fn the_scheduler_recomputes_stale_insights() {
    let db = TestDatabase::migrated().await;
    catalogue(&db, &["totals"]).await;
    let store = db.store();
    let acme = partner(&store, "Acme").await;
    ingest(&store, acme, "click", 1).await;
    let scheduler = Scheduler::new(
        store.clone(),
        vec!["totals".into()],
        SchedulerOptions {
            stale_after: Duration::from_secs(3600),
            ..SchedulerOptions::default()
        },
    );
    let worker = Worker::new(
        store.clone(),
        Models::new().with(EventTotals::new("totals")),
        OPTIONS,
    );

    assert_eq!(
        scheduler.run_one(t0()).await.unwrap().enqueued,
        1,
        "never computed"
    );
    assert_eq!(worker.run_one(t0()).await.unwrap(), Outcome::Done);
    assert_eq!(
        scheduler.run_one(t0() + secs(3599)).await.unwrap().enqueued,
        0,
        "fresh"
    );
    assert_eq!(
        scheduler.run_one(t0() + secs(3600)).await.unwrap().enqueued,
        1,
        "stale"
    );
    assert_eq!(
        worker.run_one(t0() + secs(3600)).await.unwrap(),
        Outcome::Done
    );
}
