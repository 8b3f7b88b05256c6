//! The HTTP load generator: N workers, each with its own keep-alive HTTP/1.1 connection,
//! sending the same request as fast as the server answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::latency::{Latencies, LatencySummary};

/// When a load phase ends.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Send until this much time has passed (requests in flight are finished).
    For(Duration),
    /// Send exactly this many requests in total.
    Requests(u64),
}

pub struct LoadSpec {
    pub address: SocketAddr,
    /// `POST` with `body` as JSON, or `GET` (the body is then empty).
    pub method: Method,
    pub path: &'static str,
    pub body: Bytes,
    pub events_per_request: u64,
    pub api_key: String,
    pub connections: usize,
    pub budget: Budget,
}

#[derive(Debug)]
pub struct LoadOutcome {
    pub requests: u64,
    /// Events in requests answered with 2xx: committed, by the API's contract.
    pub acknowledged_events: u64,
    pub errors: u64,
    /// The first failure, e.g. `503: {"title": ...}`, to show when `errors` is not 0.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency: LatencySummary,
}

#[derive(Default)]
struct WorkerTally {
    requests: u64,
    acknowledged: u64,
    errors: u64,
    first_error: Option<String>,
    latencies: Latencies,
}

impl WorkerTally {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// Connects every worker first, then sends until the budget is spent.
pub async fn run(spec: LoadSpec) -> anyhow::Result<LoadOutcome> {
    let spec = Arc::new(spec);
    let mut senders = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections.max(1) {
        senders.push(connect(spec.address).await?);
    }
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match spec.budget {
        Budget::For(duration) => Some(started + duration),
        Budget::Requests(_) => None,
    };
    let mut workers = JoinSet::new();
    for sender in senders {
        workers.spawn(work(spec.clone(), sender, issued.clone(), deadline));
    }
    let mut latencies = Latencies::default();
    let mut outcome = LoadOutcome {
        requests: 0,
        acknowledged_events: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency: LatencySummary::default(),
    };
    while let Some(tally) = workers.join_next().await {
        let tally = tally?;
        outcome.requests += tally.requests;
        outcome.acknowledged_events += tally.acknowledged;
        outcome.errors += tally.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = tally.first_error;
        }
        latencies.merge(&tally.latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome.latency = latencies.summary();
    Ok(outcome)
}

pub async fn connect(address: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "load connection ended");
        }
    });
    Ok(sender)
}

async fn work(
    spec: Arc<LoadSpec>,
    mut sender: SendRequest<Full<Bytes>>,
    issued: Arc<AtomicU64>,
    deadline: Option<Instant>,
) -> WorkerTally {
    let mut tally = WorkerTally::default();
    let host = HeaderValue::from_str(&spec.address.to_string()).expect("an address is a header");
    let mut api_key = match HeaderValue::from_str(&spec.api_key) {
        Ok(value) => value,
        Err(_) => {
            tally.fail("the API key is not a valid header value".into());
            return tally;
        }
    };
    api_key.set_sensitive(true);
    loop {
        let more = match (spec.budget, deadline) {
            (Budget::Requests(total), _) => issued.fetch_add(1, Ordering::Relaxed) < total,
            (Budget::For(_), Some(deadline)) => Instant::now() < deadline,
            (Budget::For(_), None) => false,
        };
        if !more {
            return tally;
        }
        if sender.ready().await.is_err() {
            // The server closed the connection; a real client would reconnect, and so do we.
            match connect(spec.address).await {
                Ok(fresh) => sender = fresh,
                Err(e) => {
                    tally.fail(format!("reconnect failed: {e:#}"));
                    return tally;
                }
            }
        }
        let mut request = Request::builder()
            .method(spec.method.clone())
            .uri(spec.path)
            .header(HOST, host.clone())
            .header("apikey", api_key.clone());
        if spec.method == Method::POST {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(spec.body.clone()))
            .expect("a well-formed request");
        let started = Instant::now();
        let answer = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .map(|body| (status, body.to_bytes()))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        tally.latencies.record(started.elapsed());
        tally.requests += 1;
        match answer {
            Ok((status, _)) if status.is_success() => tally.acknowledged += spec.events_per_request,
            Ok((status, body)) => {
                let body = String::from_utf8_lossy(&body);
                tally.fail(format!(
                    "{status}: {}",
                    body.chars().take(300).collect::<String>()
                ));
            }
            Err(e) => tally.fail(e),
        }
    }
}
