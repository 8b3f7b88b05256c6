//! Group commit for ingestion: concurrent requests hand their events to a few writer tasks,
//! which store everything waiting in one multi-row INSERT and one commit, then answer every
//! request. Throughput is bound by rows per commit, not by one commit per request, and an
//! acknowledged event is still a committed one.
//!
//! Each writer keeps its own connection acting as `service_role` for the whole session, with
//! the INSERT prepared once: a commit is then a single round trip (one autocommitted
//! statement) instead of begin, role switch, insert and commit.
//!
//! The same statement enqueues the recomputation of the committing partners' insights (one
//! debounced job per partner and model), so a burst of events costs no extra round trip and
//! causes a bounded number of jobs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::{Client, NoTls, Statement};

use crate::connect::{DatabaseTarget, RecomputeOnIngest, Store};
use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::{EventColumns, NewEvent};

#[derive(Clone, Copy, Debug)]
pub struct IngestOptions {
    /// Writer tasks; each holds one connection while it commits.
    pub writers: usize,
    /// Most events stored by one statement.
    pub max_rows_per_commit: usize,
    /// Requests waiting for a writer; beyond that the writer reports `Unavailable` (back-pressure).
    pub queue_capacity: usize,
    /// How long a writer waits for a commit before it gives up on its connection (a server that
    /// stopped answering without closing it) and reports `Timeout` to the requests in it.
    pub commit_timeout: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            writers: 8,
            max_rows_per_commit: 5000,
            queue_capacity: 10_000,
            commit_timeout: Duration::from_secs(30),
        }
    }
}

struct Job {
    events: Vec<NewEvent>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Hands events to the group-commit writers. Cloning shares the same writers.
#[derive(Clone)]
pub struct IngestWriter {
    jobs: mpsc::Sender<Job>,
}

impl IngestWriter {
    /// Starts the writer tasks. They stop once every clone of the returned writer is dropped
    /// and the queue is drained; await the returned set to know that everything is stored.
    pub fn start(store: Store, options: IngestOptions) -> (Self, JoinSet<()>) {
        let (jobs, queue) = mpsc::channel(options.queue_capacity.max(1));
        let queue = Arc::new(Mutex::new(queue));
        let mut writers = JoinSet::new();
        for _ in 0..options.writers.max(1) {
            writers.spawn(write_batches(
                WriterSession {
                    target: store.target.clone(),
                    recompute: store.recompute.clone(),
                    commit_timeout: options.commit_timeout,
                    connection: None,
                },
                queue.clone(),
                options.max_rows_per_commit.max(1),
            ));
        }
        (Self { jobs }, writers)
    }

    /// Stores `events` (all or none) and returns once they are committed.
    pub async fn write(&self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.jobs
            .try_send(Job { events, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("the ingest queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("the server is shutting down".into())
                }
            })?;
        committed
            .await
            .map_err(|_| StoreError::Unavailable("the ingest writer stopped".into()))?
    }

    /// Requests waiting for a writer, for metrics.
    pub fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}

async fn write_batches(
    mut session: WriterSession,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_rows: usize,
) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut rows = first.events.len();
            let mut batch = vec![first];
            while rows < max_rows {
                match queue.try_recv() {
                    Ok(job) => {
                        rows += job.events.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        commit(&mut session, batch).await;
    }
}

async fn commit(session: &mut WriterSession, batch: Vec<Job>) {
    let rows: usize = batch.iter().map(|j| j.events.len()).sum();
    metrics::histogram!("epai_ingest_commit_rows").record(rows as f64);
    metrics::histogram!("epai_ingest_commit_requests").record(batch.len() as f64);
    match session
        .insert(batch.iter().flat_map(|j| j.events.iter()))
        .await
    {
        Ok(()) => {
            for job in batch {
                let _ = job.done.send(Ok(()));
            }
        }
        // One request's failure must not fail the others that shared its commit: retry each
        // on its own.
        Err(_) if batch.len() > 1 => {
            for job in batch {
                let outcome = session.insert(job.events.iter()).await;
                let _ = job.done.send(outcome);
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.done.send(Err(e.clone()));
            }
        }
    }
}

/// A writer's own connection, as `service_role`, with the INSERT prepared; reopened after a
/// failure at the next commit.
struct WriterSession {
    target: DatabaseTarget,
    recompute: Arc<RecomputeOnIngest>,
    commit_timeout: Duration,
    connection: Option<WriterConnection>,
}

struct WriterConnection {
    client: Client,
    insert: Statement,
    _driver: AbortOnDrop,
}

/// The task driving a connection, stopped with it: an abandoned connection to a server that
/// does not answer must not linger.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl WriterSession {
    async fn insert<'a>(
        &mut self,
        events: impl Iterator<Item = &'a NewEvent> + Clone,
    ) -> Result<(), StoreError> {
        let recompute = self.recompute.clone();
        let columns = EventColumns::of(events, &recompute, chrono::Utc::now());
        let commit_timeout = self.commit_timeout;
        // Opening a connection and preparing the INSERT wait on the server too.
        let connection = match tokio::time::timeout(commit_timeout, self.connected()).await {
            Ok(connection) => connection?,
            Err(_) => {
                self.connection = None;
                return Err(StoreError::Timeout(format!(
                    "no ingest connection within {commit_timeout:?}"
                )));
            }
        };
        let executed = tokio::time::timeout(
            commit_timeout,
            connection
                .client
                .execute(&connection.insert, &columns.params()),
        )
        .await;
        match executed {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                if e.is_closed() || e.as_db_error().is_none() {
                    self.connection = None;
                }
                Err(e.into())
            }
            // Whether it committed is unknown: the requests are not acknowledged (a retry with
            // an Idempotency-Key is safe), and the connection is not trusted again.
            Err(_) => {
                self.connection = None;
                Err(StoreError::Timeout(format!(
                    "no answer to an ingest commit within {commit_timeout:?}"
                )))
            }
        }
    }

    async fn connected(&mut self) -> Result<&WriterConnection, StoreError> {
        if self
            .connection
            .as_ref()
            .is_none_or(|connection| connection.client.is_closed())
        {
            self.connection = None;
            let (client, connection) = self.target.app_config().connect(NoTls).await?;
            let driver = AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "ingest writer connection ended");
                }
            }));
            let prepared = async {
                client
                    .batch_execute(named_query!("tenant/writer_session"))
                    .await?;
                client.prepare(named_query!("events/insert")).await
            }
            .await;
            self.connection = Some(WriterConnection {
                client,
                insert: prepared?,
                _driver: driver,
            });
        }
        self.connection
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("no ingest connection".into()))
    }
}
