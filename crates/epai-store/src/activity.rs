//! Request logs and security events, written in batches off the request path: a request hands
//! its record to a bounded queue and moves on; a background task stores whatever accumulated
//! every moment in one statement per table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_domain::{AuthUserId, PartnerId};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::connect::Store;
use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;

/// One row of `logs`. Bodies must already be masked and capped by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestLog {
    pub partner_id: Option<PartnerId>,
    pub endpoint: String,
    pub method: String,
    pub status: i32,
    pub duration_ms: i32,
    pub request_body: Option<Value>,
    pub response_body: Option<Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One row of `security_events`. `details` must never hold a secret.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityEvent {
    pub event_type: String,
    pub partner_id: Option<PartnerId>,
    pub user_id: Option<AuthUserId>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

enum Activity {
    Request(Box<RequestLog>),
    Security(Box<SecurityEvent>),
}

/// Queues request logs and security events for the background writer.
#[derive(Clone)]
pub struct ActivityRecorder {
    queue: mpsc::Sender<Activity>,
}

const QUEUE_CAPACITY: usize = 50_000;
const MAX_BATCH: usize = 2_000;
const FLUSH_EVERY: Duration = Duration::from_millis(500);

impl ActivityRecorder {
    /// Starts the writer; it drains and stops once every recorder clone is dropped.
    pub fn start(store: Store) -> (Self, JoinHandle<()>) {
        let (queue, incoming) = mpsc::channel(QUEUE_CAPACITY);
        (
            Self { queue },
            tokio::spawn(write_activity(store, incoming)),
        )
    }

    /// Queues a request log; when the queue is full the record is dropped (and counted in the
    /// server log) rather than slowing the request down.
    pub fn request(&self, log: RequestLog) {
        self.enqueue(Activity::Request(Box::new(log)));
    }

    pub fn security(&self, event: SecurityEvent) {
        self.enqueue(Activity::Security(Box::new(event)));
    }

    fn enqueue(&self, activity: Activity) {
        if self.queue.try_send(activity).is_err() {
            metrics::counter!("epai_activity_dropped_total").increment(1);
            tracing::warn!("activity queue full or closed: a log record was dropped");
        }
    }
}

async fn write_activity(store: Store, mut incoming: mpsc::Receiver<Activity>) {
    let mut requests = Vec::new();
    let mut security = Vec::new();
    loop {
        let first = tokio::select! {
            activity = incoming.recv() => activity,
            () = tokio::time::sleep(FLUSH_EVERY), if !requests.is_empty() || !security.is_empty() => {
                flush(&store, &mut requests, &mut security).await;
                continue;
            }
        };
        let Some(first) = first else {
            flush(&store, &mut requests, &mut security).await;
            return;
        };
        let mut next = Some(first);
        while let Some(activity) = next {
            match activity {
                Activity::Request(log) => requests.push(*log),
                Activity::Security(event) => security.push(*event),
            }
            if requests.len() + security.len() >= MAX_BATCH {
                flush(&store, &mut requests, &mut security).await;
            }
            next = incoming.try_recv().ok();
        }
    }
}

async fn flush(store: &Store, requests: &mut Vec<RequestLog>, security: &mut Vec<SecurityEvent>) {
    if requests.is_empty() && security.is_empty() {
        return;
    }
    let stored = store
        .as_service_role(async |service| {
            service.insert_request_logs(requests).await?;
            service.insert_security_events(security).await
        })
        .await;
    if let Err(e) = stored {
        // One unstorable record must not cost the others: store them one by one.
        tracing::warn!(error = %e, "storing activity in one batch failed; storing record by record");
        let mut lost = 0;
        for log in requests.iter() {
            let one = std::slice::from_ref(log);
            if store
                .as_service_role(async |service| service.insert_request_logs(one).await)
                .await
                .is_err()
            {
                lost += 1;
            }
        }
        for event in security.iter() {
            let one = std::slice::from_ref(event);
            if store
                .as_service_role(async |service| service.insert_security_events(one).await)
                .await
                .is_err()
            {
                lost += 1;
            }
        }
        if lost > 0 {
            metrics::counter!("epai_activity_dropped_total").increment(lost);
            tracing::error!(lost, "activity records could not be stored");
        }
    }
    requests.clear();
    security.clear();
}

impl ServiceRole<'_> {
    pub async fn insert_request_logs(&self, logs: &[RequestLog]) -> Result<(), StoreError> {
        if logs.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = logs.iter().map(|_| Uuid::now_v7()).collect();
        let partners: Vec<Option<Uuid>> = logs
            .iter()
            .map(|l| l.partner_id.map(|p| p.as_uuid()))
            .collect();
        let endpoints: Vec<&str> = logs.iter().map(|l| l.endpoint.as_str()).collect();
        let methods: Vec<&str> = logs.iter().map(|l| l.method.as_str()).collect();
        let statuses: Vec<i32> = logs.iter().map(|l| l.status).collect();
        let durations: Vec<i32> = logs.iter().map(|l| l.duration_ms).collect();
        let requests: Vec<Option<&Value>> = logs.iter().map(|l| l.request_body.as_ref()).collect();
        let responses: Vec<Option<&Value>> =
            logs.iter().map(|l| l.response_body.as_ref()).collect();
        let ips: Vec<Option<&str>> = logs.iter().map(|l| l.ip_address.as_deref()).collect();
        let agents: Vec<Option<&str>> = logs.iter().map(|l| l.user_agent.as_deref()).collect();
        let times: Vec<DateTime<Utc>> = logs.iter().map(|l| l.created_at).collect();
        self.tx
            .execute(
                named_query!("logs/insert_many"),
                &[
                    &ids, &partners, &endpoints, &methods, &statuses, &durations, &requests,
                    &responses, &ips, &agents, &times,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn insert_security_events(&self, events: &[SecurityEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let details: Vec<&Value> = events.iter().map(|e| &e.details).collect();
        let ips: Vec<Option<&str>> = events.iter().map(|e| e.ip_address.as_deref()).collect();
        let agents: Vec<Option<&str>> = events.iter().map(|e| e.user_agent.as_deref()).collect();
        let partners: Vec<Option<Uuid>> = events
            .iter()
            .map(|e| e.partner_id.map(|p| p.as_uuid()))
            .collect();
        let users: Vec<Option<Uuid>> = events
            .iter()
            .map(|e| e.user_id.map(|u| u.as_uuid()))
            .collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at).collect();
        self.tx
            .execute(
                named_query!("security_events/insert_many"),
                &[&types, &details, &ips, &agents, &partners, &users, &times],
            )
            .await?;
        Ok(())
    }
}
