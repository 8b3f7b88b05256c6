//! Group commit for ingestion: concurrent requests hand their events to a few writer tasks,
//! which store everything waiting in one multi-row INSERT and one commit, then answer every
//! request. Throughput is bound by rows per commit, not by one commit per request, and an
//! acknowledged event is still a committed one.
//!
//! Small commits take turns: while `small_commits` of them are in flight, the next writer
//! gathers the requests that arrive meanwhile and starts once one ends (or once it holds enough
//! rows to be worth a commit of its own). Otherwise idle writers would each take the first
//! request they see, and on a busy CPU many commits of a few rows cost far more than a few of
//! many rows. Large requests (batches) run alongside, up to one per writer.
//!
//! How many small commits should overlap depends on the disk. Where flushing a commit takes
//! longer than executing one, a commit executing while others wait for their flush hides the
//! disk; where the flush is quick, overlapping commits only split the waiting requests into
//! more, smaller commits competing for the CPU. Unless configured, the writers time a flushed
//! commit against a plain round trip when they start and choose one or three
//! ([`small_commits_for_flush`]).
//!
//! Each writer keeps its own connection acting as `service_role` for the whole session, with
//! the INSERT prepared once: a commit is then a single round trip (one autocommitted
//! statement) instead of begin, role switch, insert and commit.
//!
//! The same statement enqueues the recomputation of the committing partners' insights (one
//! debounced job per partner and model), so a burst of events costs no extra round trip and
//! causes a bounded number of jobs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc, oneshot, watch};
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
    /// A commit of fewer events waits while `small_commits` such commits are in flight, and
    /// takes the requests that arrived meanwhile along; 0 never waits (more commits of fewer
    /// rows, which only pays when the disk's flush latency, not the CPU, is the limit).
    pub coalesce_rows: usize,
    /// Small commits in flight at once; the next one waits for one of them to end. `None`:
    /// chosen when the writers start, from how long the database takes to flush a commit.
    pub small_commits: Option<usize>,
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
            coalesce_rows: 100,
            small_commits: None,
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
        let queue = Arc::new(Queue {
            jobs: Mutex::new(queue),
            max_rows: options.max_rows_per_commit.max(1),
            coalesce_rows: options.coalesce_rows,
            small_commit_limit: AtomicUsize::new(options.small_commits.unwrap_or(1).max(1)),
            small_commits: watch::Sender::new(0),
        });
        let mut writers = JoinSet::new();
        if let Some(limit) = options.small_commits {
            metrics::gauge!("epai_ingest_small_commits").set(limit.max(1) as f64);
        } else {
            writers.spawn(choose_small_commits(store.target.clone(), queue.clone()));
        }
        for _ in 0..options.writers.max(1) {
            writers.spawn(write_batches(
                WriterSession {
                    target: store.target.clone(),
                    recompute: store.recompute.clone(),
                    commit_timeout: options.commit_timeout,
                    connection: None,
                },
                queue.clone(),
            ));
        }
        (Self { jobs }, writers)
    }

    /// Stores `events` (all or none); the returned future ends once they are committed.
    ///
    /// The events are queued by the call itself, not when the future is first polled:
    /// requests are committed in the order of their calls.
    pub fn write(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let queued = if events.is_empty() {
            None
        } else {
            let (done, committed) = oneshot::channel();
            Some(
                self.jobs
                    .try_send(Job { events, done })
                    .map(|()| committed)
                    .map_err(|e| match e {
                        mpsc::error::TrySendError::Full(_) => {
                            StoreError::Unavailable("the ingest queue is full".into())
                        }
                        mpsc::error::TrySendError::Closed(_) => {
                            StoreError::Unavailable("the server is shutting down".into())
                        }
                    }),
            )
        };
        async move {
            let Some(committed) = queued.transpose()? else {
                return Ok(());
            };
            committed
                .await
                .map_err(|_| StoreError::Unavailable("the ingest writer stopped".into()))?
        }
    }

    /// Requests waiting for a writer, for metrics.
    pub fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}

/// The requests waiting for a writer, and what the writers share to coalesce them.
struct Queue {
    jobs: Mutex<mpsc::Receiver<Job>>,
    max_rows: usize,
    coalesce_rows: usize,
    small_commit_limit: AtomicUsize,
    /// Commits in flight of fewer than `coalesce_rows` rows.
    small_commits: watch::Sender<usize>,
}

/// Counts a small commit as in flight until dropped (also when its writer is cancelled).
struct SmallCommit<'a>(&'a watch::Sender<usize>);

impl<'a> SmallCommit<'a> {
    fn start(small_commits: &'a watch::Sender<usize>) -> Self {
        small_commits.send_modify(|n| *n += 1);
        Self(small_commits)
    }
}

impl Drop for SmallCommit<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Queue {
    /// The next requests to commit together, or `None` once the queue is closed and empty.
    /// Only one writer gathers at a time; a small batch waits while the limit of small commits
    /// is in flight (see the module's comment) before it is handed out.
    async fn next_batch(&self) -> Option<(Vec<Job>, Option<SmallCommit<'_>>)> {
        let mut jobs = self.jobs.lock().await;
        let first = jobs.recv().await?;
        let mut rows = first.events.len();
        let mut batch = vec![first];
        let mut small_commits = self.small_commits.subscribe();
        loop {
            while rows < self.max_rows {
                let Ok(job) = jobs.try_recv() else { break };
                rows += job.events.len();
                batch.push(job);
            }
            if rows >= self.max_rows.min(self.coalesce_rows)
                || *small_commits.borrow_and_update()
                    < self.small_commit_limit.load(Ordering::Relaxed)
            {
                break;
            }
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => {
                        rows += job.events.len();
                        batch.push(job);
                    }
                    None => break,
                },
                // The sender lives in `self`: this only ends on a change of the count.
                _ = small_commits.changed() => {}
            }
        }
        let small = (rows < self.coalesce_rows).then(|| SmallCommit::start(&self.small_commits));
        Some((batch, small))
    }
}

/// Where a flushed commit takes at least this much longer than a round trip, small commits
/// overlap. Measured on 2-core machines (BENCHMARKS.md): with a flush of about 15 µs one small
/// commit in flight did best, on a disk whose flushes held pgbench to 2,100–2,500 commits/s at
/// 32 connections three did; the line sits between, near what a small commit's own work costs.
const SLOW_FLUSH: Duration = Duration::from_micros(500);

/// Small commits in flight for a database whose commits take `flush` to reach the disk.
pub fn small_commits_for_flush(flush: Duration) -> usize {
    if flush >= SLOW_FLUSH { 3 } else { 1 }
}

/// How much longer than a plain round trip a commit takes that must reach the disk (it takes
/// a transaction id, so it writes a commit record): the fastest of a few of each, so that
/// other work on the database inflates the figure as little as possible.
pub async fn time_commit_flush(target: &DatabaseTarget) -> Result<Duration, StoreError> {
    const SAMPLES: usize = 7;
    let (client, _driver) = connect(target).await?;
    let round_trip = client.prepare(named_query!("ingest/round_trip")).await?;
    let flushed = client
        .prepare(named_query!("ingest/flushed_commit"))
        .await?;
    let mut fastest = [Duration::MAX; 2];
    for _ in 0..SAMPLES {
        for (statement, best) in [&round_trip, &flushed].into_iter().zip(&mut fastest) {
            let started = Instant::now();
            client.execute(statement, &[]).await?;
            *best = (*best).min(started.elapsed());
        }
    }
    Ok(fastest[1].saturating_sub(fastest[0]))
}

/// Sets the small-commit limit from [`time_commit_flush`]. Until it is done, and when the
/// database cannot be reached, one small commit is in flight at a time.
async fn choose_small_commits(target: DatabaseTarget, queue: Arc<Queue>) {
    // The writers' shutdown waits for this task: a server that does not answer must not hold it.
    let timed = tokio::time::timeout(Duration::from_secs(10), time_commit_flush(&target))
        .await
        .unwrap_or_else(|_| Err(StoreError::Timeout("no answer within 10 s".into())));
    match timed {
        Ok(flush) => {
            let limit = small_commits_for_flush(flush);
            queue.small_commit_limit.store(limit, Ordering::Relaxed);
            metrics::gauge!("epai_ingest_small_commits").set(limit as f64);
            tracing::info!(
                flush_us = flush.as_micros(),
                small_commits = limit,
                "ingest: timed a commit flush"
            );
        }
        Err(e) => tracing::warn!(
            error = %e,
            "ingest: cannot time a commit flush; one small commit in flight at a time"
        ),
    }
}

async fn write_batches(mut session: WriterSession, queue: Arc<Queue>) {
    while let Some((batch, _small)) = queue.next_batch().await {
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

/// A connection of the ingest writers' own, outside the pool, with the task driving it.
async fn connect(target: &DatabaseTarget) -> Result<(Client, AbortOnDrop), StoreError> {
    let (client, connection) = target.app_config().connect(NoTls).await?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "ingest writer connection ended");
        }
    }));
    Ok((client, driver))
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
            let (client, driver) = connect(&self.target).await?;
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
