//! Insight workers: inside `epai serve` (`EPAI_WORKERS`, default 1) or as separate
//! `epai worker` processes for scale-out, all sharing the queue in PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use epai_store::{RecomputeOnIngest, Store};
use epai_webhooks::SecretCipher;
use epai_worker::{Models, Scheduler, SchedulerOptions, Worker, WorkerOptions, wake_on_new_jobs};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::{self, GlobalArgs};
use crate::database;

#[derive(Args, Debug, Clone)]
pub struct InsightArgs {
    /// Insight workers in this process; 0 leaves the jobs to `epai worker` processes.
    #[arg(long, env = "EPAI_WORKERS", default_value_t = 1)]
    pub workers: usize,

    /// Milliseconds to wait for more events before recomputing a partner's insights.
    #[arg(long, env = "EPAI_INSIGHT_DEBOUNCE_MS", default_value_t = 500)]
    pub insight_debounce_ms: u64,

    /// Seconds after which insights are recomputed even without new events.
    #[arg(long, env = "EPAI_INSIGHT_STALE_SECONDS", default_value_t = 3600)]
    pub insight_stale_seconds: u64,

    /// Seconds a worker may hold a job before it is presumed dead and the job runs elsewhere.
    #[arg(long, env = "EPAI_JOB_VISIBILITY_SECONDS", default_value_t = 300)]
    pub job_visibility_seconds: u64,

    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookArgs,
}

/// The models this binary runs on the queue, by name: every built-in model of the catalogue.
/// (Custom ONNX models only answer `predict` requests.)
pub fn models() -> Models {
    Models::new()
        .with(epai_worker::VolumeForecast)
        .with(epai_worker::AnomalyDetection)
        .with(epai_worker::EntityRisk)
        .with(epai_worker::AttendanceForecast)
        .with(epai_worker::LeadScoring)
}

impl InsightArgs {
    /// What ingestion queues: every model of this binary, after the debounce.
    pub fn recompute(&self, models: &Models) -> RecomputeOnIngest {
        RecomputeOnIngest {
            models: models.names(),
            debounce: Duration::from_millis(self.insight_debounce_ms),
        }
    }
}

/// Workers and the queue scheduler running in this process.
pub struct Running {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Starts `args.workers` insight workers and a scheduler (none when `args.workers` is 0), and
/// the webhook delivery workers (`EPAI_WEBHOOK_WORKERS`).
pub fn start(
    store: &Store,
    models: &Models,
    args: &InsightArgs,
    cipher: &Arc<SecretCipher>,
) -> anyhow::Result<Running> {
    let (shutdown, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    args.webhooks.start(store, cipher, &stopping, &mut tasks)?;
    if args.workers == 0 {
        return Ok(Running { shutdown, tasks });
    }
    let wakeups = Arc::new(Notify::new());
    let waker = tokio::spawn(wake_on_new_jobs(store.clone(), wakeups.clone()));
    let options = WorkerOptions {
        visibility: Duration::from_secs(args.job_visibility_seconds.max(1)),
        ..WorkerOptions::default()
    };
    for _ in 0..args.workers {
        let worker = Worker::new(store.clone(), models.clone(), options);
        let (wakeups, stopping) = (wakeups.clone(), stopping.clone());
        tasks.spawn(async move { worker.run(wakeups, stopping).await });
    }
    let scheduler = Scheduler::new(
        store.clone(),
        models.names(),
        SchedulerOptions {
            stale_after: Duration::from_secs(args.insight_stale_seconds.max(1)),
            ..SchedulerOptions::default()
        },
    );
    let scheduler_stopping = stopping.clone();
    tasks.spawn(async move { scheduler.run(scheduler_stopping).await });
    // The notification listener has nothing to finish: it ends with the workers.
    let mut listener_stopping = stopping;
    tasks.spawn(async move {
        let _ = listener_stopping.wait_for(|stop| *stop).await;
        waker.abort();
    });
    Ok(Running { shutdown, tasks })
}

impl Running {
    /// Lets every running job finish (an unfinished one would be reclaimed after its visibility
    /// timeout anyway), then stops.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// `epai worker`: workers only, until SIGINT or SIGTERM.
pub async fn run(global: &GlobalArgs, args: &InsightArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.workers > 0 || args.webhooks.webhook_workers > 0,
        "EPAI_WORKERS and EPAI_WEBHOOK_WORKERS are 0: this worker process would do nothing"
    );
    let cipher = args.webhooks.cipher(&global.data_dir)?;
    let db = database::open(global, database::Ownership::Shared).await?;
    let store = db.store(global)?;
    let status = store.migration_status().await?;
    anyhow::ensure!(
        status.is_current(),
        "the database is at migration {:?}, this binary needs {}: run `epai migrate` first",
        status.applied,
        status.expected
    );
    let models = models();
    let stop = config::shutdown_signal();
    let running = start(&store, &models, args, &cipher)?;
    tracing::info!(workers = args.workers, models = ?models.names(),
        webhook_workers = args.webhooks.webhook_workers, "workers started");
    println!(
        "EPAI workers running: {} insight, {} webhook  (database: {})",
        args.workers,
        args.webhooks.webhook_workers,
        db.describe()
    );
    stop.await;
    running.stop().await;
    tracing::info!("insight workers stopped");
    db.close().await
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use epai_domain::{Email, PartnerName};
    use epai_store::notify::Notification;
    use epai_store::testing::TestDatabase;
    use epai_store::{NewInsight, NewPartner, PartnerFeatures};
    use epai_worker::{InsightModel, ModelError};
    use tokio::sync::mpsc;

    use super::*;

    struct Constant;

    impl InsightModel for Constant {
        fn name(&self) -> &'static str {
            "constant"
        }

        fn compute(
            &self,
            _: &PartnerFeatures,
            _: DateTime<Utc>,
        ) -> Result<Vec<NewInsight>, ModelError> {
            Ok(vec![NewInsight {
                subject: "all".into(),
                content: serde_json::json!({"title": "constant"}),
                metadata: None,
            }])
        }
    }

    #[tokio::test]
    async fn running_workers_pick_up_a_new_job_and_stop_when_asked() {
        let db = TestDatabase::migrated().await;
        db.admin()
            .await
            .execute(
                "INSERT INTO models (name, version, status) VALUES ('constant', '1', 'active')",
                &[],
            )
            .await
            .unwrap();
        let store = db.store();
        let new = NewPartner {
            name: PartnerName::parse("Acme").unwrap(),
            email: Email::parse("acme@example.com").unwrap(),
            password_hash: None,
        };
        let partner = store
            .as_service_role(async |s| s.create_partner(&new).await)
            .await
            .unwrap()
            .id;
        let (sink, mut notifications) = mpsc::channel(16);
        let listener = tokio::spawn({
            let store = store.clone();
            async move { store.listen(sink).await }
        });
        assert_eq!(notifications.recv().await, Some(Notification::Resubscribed));

        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            webhooks: crate::webhooks::WebhookArgs,
        }
        let args = InsightArgs {
            workers: 2,
            insight_debounce_ms: 0,
            insight_stale_seconds: 3600,
            job_visibility_seconds: 60,
            webhooks: <Defaults as clap::Parser>::parse_from(["epai"]).webhooks,
        };
        let cipher = Arc::new(SecretCipher::generate());
        let running = start(&store, &Models::new().with(Constant), &args, &cipher).unwrap();
        let now = Utc::now();
        store
            .as_service_role(async |s| s.enqueue(partner, "constant", now, now).await)
            .await
            .unwrap();
        let written = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(Notification::InsightChanged { partner: p, .. }) =
                    notifications.recv().await
                {
                    return p;
                }
            }
        })
        .await
        .expect("a worker ran the job");
        assert_eq!(written, partner);

        running.stop().await;
        listener.abort();
        let states: Vec<String> = db
            .admin()
            .await
            .query("SELECT state::text FROM insight_jobs", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(states, ["completed"]);
    }
}
