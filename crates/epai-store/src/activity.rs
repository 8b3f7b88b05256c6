//! Request logs and security events, written in batches off the request path: a request hands
//! its record to a bounded queue and moves on; a background task stores whatever accumulated
//! every moment in one statement per table. While the database is unreachable the records
//! wait in memory (bounded) and are stored once it is back.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Utc};
use epai_domain::{AuthUserId, PartnerId};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::types::{IsNull, ToSql, Type, accepts, to_sql_checked};
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
    pub request_body: Option<LoggedBody>,
    pub response_body: Option<LoggedBody>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A body as `logs` stores it: the text of one JSON value, kept as text so that a body worth
/// logging as it came is neither parsed into a tree nor written out again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedBody(String);

impl LoggedBody {
    pub fn from_value(value: &Value) -> Self {
        Self(value.to_string())
    }

    /// `text` as it is, when it is exactly one JSON value.
    pub fn from_json_text(text: &[u8]) -> Option<Self> {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).ok()?;
        String::from_utf8(text.to_vec()).ok().map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ToSql for LoggedBody {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte followed by the text; json's is the text.
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    accepts!(JSON, JSONB);
    to_sql_checked!();
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
/// While the database is unreachable, records wait (up to this many, then the oldest go) and
/// a store is retried this often.
const MAX_PENDING: usize = QUEUE_CAPACITY;
const RETRY_EVERY: Duration = Duration::from_secs(1);

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

/// Records waiting to be stored, and when to try next.
struct Pending {
    requests: Vec<RequestLog>,
    security: Vec<SecurityEvent>,
    /// When the oldest waiting record is due to be stored.
    due: Option<Instant>,
    /// Set while the database is unreachable: no attempt before then.
    outage_until: Option<Instant>,
}

async fn write_activity(store: Store, mut incoming: mpsc::Receiver<Activity>) {
    let mut pending = Pending {
        requests: Vec::new(),
        security: Vec::new(),
        due: None,
        outage_until: None,
    };
    loop {
        let due = pending.due;
        let first = tokio::select! {
            activity = incoming.recv() => activity,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                pending.flush(&store).await;
                continue;
            }
        };
        let Some(first) = first else {
            pending.flush(&store).await;
            pending.report_lost();
            return;
        };
        let mut next = Some(first);
        while let Some(activity) = next {
            pending.push(activity);
            if pending.len() >= MAX_BATCH && pending.outage_until.is_none() {
                pending.flush(&store).await;
            }
            next = incoming.try_recv().ok();
        }
    }
}

impl Pending {
    fn len(&self) -> usize {
        self.requests.len() + self.security.len()
    }

    fn push(&mut self, activity: Activity) {
        match activity {
            Activity::Request(log) => self.requests.push(*log),
            Activity::Security(event) => self.security.push(*event),
        }
        if self.due.is_none() {
            self.due = Some(Instant::now() + FLUSH_EVERY);
        }
        let excess = self.len().saturating_sub(MAX_PENDING);
        if excess > 0 {
            // The oldest request logs go first: security events matter more.
            let dropped = excess.min(self.requests.len());
            self.requests.drain(..dropped);
            metrics::counter!("epai_activity_dropped_total").increment(dropped as u64);
            tracing::warn!(
                dropped,
                "the database has been unreachable too long: oldest request logs dropped"
            );
        }
    }

    /// Stores everything waiting: in one statement per table, or, when that fails for a
    /// reason other than an outage, record by record so one unstorable record costs only
    /// itself. During an outage everything stays for the next attempt.
    async fn flush(&mut self, store: &Store) {
        if self.len() == 0 {
            self.due = None;
            return;
        }
        let (requests, security) = (&self.requests, &self.security);
        let stored = store
            .as_service_role(async |service| {
                service.insert_request_logs(requests).await?;
                service.insert_security_events(security).await
            })
            .await;
        let outcome = match stored {
            Ok(()) => {
                self.requests.clear();
                self.security.clear();
                Ok(())
            }
            Err(e) if is_outage(&e) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "storing activity in one batch failed; storing record by record");
                self.flush_one_by_one(store).await
            }
        };
        match outcome {
            Ok(()) => {
                if self.outage_until.take().is_some() {
                    tracing::info!("the database is back: stored the activity kept meanwhile");
                }
                self.due = None;
            }
            Err(e) => {
                if self.outage_until.is_none() {
                    tracing::warn!(error = %e, waiting = self.len(), "cannot store activity; keeping it until the database is back");
                }
                let retry = Instant::now() + RETRY_EVERY;
                self.outage_until = Some(retry);
                self.due = Some(retry);
            }
        }
    }

    /// Stores each record alone, dropping those the database refuses; stops at an outage,
    /// keeping what is left.
    async fn flush_one_by_one(&mut self, store: &Store) -> Result<(), StoreError> {
        let mut lost = 0;
        let mut outage = None;
        let requests = std::mem::take(&mut self.requests);
        for log in requests {
            if outage.is_some() {
                self.requests.push(log);
                continue;
            }
            let one = std::slice::from_ref(&log);
            match store
                .as_service_role(async |service| service.insert_request_logs(one).await)
                .await
            {
                Ok(()) => {}
                Err(e) if is_outage(&e) => {
                    outage = Some(e);
                    self.requests.push(log);
                }
                Err(_) => lost += 1,
            }
        }
        let security = std::mem::take(&mut self.security);
        for event in security {
            if outage.is_some() {
                self.security.push(event);
                continue;
            }
            let one = std::slice::from_ref(&event);
            match store
                .as_service_role(async |service| service.insert_security_events(one).await)
                .await
            {
                Ok(()) => {}
                Err(e) if is_outage(&e) => {
                    outage = Some(e);
                    self.security.push(event);
                }
                Err(_) => lost += 1,
            }
        }
        if lost > 0 {
            metrics::counter!("epai_activity_dropped_total").increment(lost);
            tracing::error!(lost, "activity records could not be stored");
        }
        outage.map_or(Ok(()), Err)
    }

    /// At shutdown: whatever could not be stored is gone; say how much.
    fn report_lost(&self) {
        let lost = self.len();
        if lost > 0 {
            metrics::counter!("epai_activity_dropped_total").increment(lost as u64);
            tracing::error!(
                lost,
                "shutting down while the database is unreachable: activity records lost"
            );
        }
    }
}

fn is_outage(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Timeout(_))
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
        let requests: Vec<Option<&LoggedBody>> =
            logs.iter().map(|l| l.request_body.as_ref()).collect();
        let responses: Vec<Option<&LoggedBody>> =
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
