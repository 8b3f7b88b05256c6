//! Group commit for ingestion: concurrent requests hand their events to a few writer tasks,
//! which store everything waiting in one multi-row INSERT and one commit, then answer every
//! request. Throughput is bound by rows per commit, not by one commit per request, and an
//! acknowledged event is still a committed one.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::connect::Store;
use crate::error::StoreError;
use crate::service::NewEvent;

#[derive(Clone, Copy, Debug)]
pub struct IngestOptions {
    /// Writer tasks; each holds one connection while it commits.
    pub writers: usize,
    /// Most events stored by one statement.
    pub max_rows_per_commit: usize,
    /// Requests waiting for a writer; beyond that the writer reports `Unavailable` (back-pressure).
    pub queue_capacity: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            writers: 4,
            max_rows_per_commit: 5000,
            queue_capacity: 10_000,
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
                store.clone(),
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

async fn write_batches(store: Store, queue: Arc<Mutex<mpsc::Receiver<Job>>>, max_rows: usize) {
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
        commit(&store, batch).await;
    }
}

async fn commit(store: &Store, batch: Vec<Job>) {
    let events: Vec<NewEvent> = batch
        .iter()
        .flat_map(|j| j.events.iter().cloned())
        .collect();
    metrics::histogram!("epai_ingest_commit_rows").record(events.len() as f64);
    metrics::histogram!("epai_ingest_commit_requests").record(batch.len() as f64);
    match insert(store, &events).await {
        Ok(()) => {
            for job in batch {
                let _ = job.done.send(Ok(()));
            }
        }
        // One request's failure must not fail the others that shared its commit: retry each
        // on its own.
        Err(_) if batch.len() > 1 => {
            for job in batch {
                let outcome = insert(store, &job.events).await;
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

async fn insert(store: &Store, events: &[NewEvent]) -> Result<(), StoreError> {
    store
        .as_service_role(async |service| service.insert_events(events).await.map(|_| ()))
        .await
}
