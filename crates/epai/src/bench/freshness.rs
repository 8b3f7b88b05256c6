//! Event to insight: how long after an event is acknowledged the insight it changes reaches a
//! client listening on `GET /v1/insights/stream` (debounce, the job, the models, the write and
//! the notification included).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use serde::Serialize;
use tokio::sync::mpsc;

use super::http;
use super::latency::{Latencies, LatencySummary};
use super::postgres::Owner;
use super::workload;

/// Longest wait for one insight.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the partner's jobs to finish before a sample (the first waits for the runs
/// the ingest phases queued).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize)]
pub struct FreshnessFigures {
    /// Events the partner had stored when the samples were taken.
    pub partner_events: i64,
    pub samples: u64,
    pub timeouts: u64,
    pub latency_ms: super::reads::ReadLatencyMs,
}

/// One `insight` event of the stream: when it arrived and when the insight last changed.
struct Arrival {
    at: Instant,
    updated_at: DateTime<Utc>,
}

/// `samples` times: wait until no job of the partner is waiting or running, ingest one event,
/// and time until the stream delivers an insight changed after the event was sent.
pub async fn measure(
    address: SocketAddr,
    api_key: &str,
    admin: &tokio_postgres::Client,
    owner: Owner,
    samples: usize,
) -> anyhow::Result<FreshnessFigures> {
    let mut arrivals = subscribe(address, api_key).await?;
    let partner_events: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE partner_id = $1",
            &[&owner.partner_id],
        )
        .await?
        .get(0);
    let mut sender = http::connect(address).await?;
    let mut latencies = Latencies::default();
    let mut timeouts = 0;
    for _ in 0..samples {
        wait_for_idle_jobs(admin, owner).await?;
        let sent_wall = Utc::now();
        let sent = Instant::now();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/events")
            .header(HOST, address.to_string())
            .header(CONTENT_TYPE, "application/json")
            .header("apikey", api_key)
            .body(Full::new(Bytes::from(workload::single_event_body())))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        anyhow::ensure!(
            status.is_success(),
            "the sample event was refused: {status}"
        );
        let deadline = tokio::time::Instant::now() + SAMPLE_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some(arrival)) if arrival.updated_at >= sent_wall => {
                    latencies.record(arrival.at.duration_since(sent));
                    break;
                }
                // A change announced for an earlier sample, still in the stream.
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!("the insight stream ended"),
                Err(_) => {
                    timeouts += 1;
                    break;
                }
            }
        }
    }
    let summary: LatencySummary = latencies.summary();
    Ok(FreshnessFigures {
        partner_events,
        samples: summary.samples,
        timeouts,
        latency_ms: super::reads::ReadLatencyMs::of(&summary),
    })
}

/// Polls the queue until the partner has no job waiting or running.
async fn wait_for_idle_jobs(admin: &tokio_postgres::Client, owner: Owner) -> anyhow::Result<()> {
    let deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        let busy: i64 = admin
            .query_one(
                "SELECT count(*) FROM insight_jobs
                 WHERE partner_id = $1 AND state IN ('available', 'retryable', 'running')",
                &[&owner.partner_id],
            )
            .await?
            .get(0);
        if busy == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the partner's insight jobs did not finish within {} s",
            IDLE_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens the partner's insight stream; every `insight` event read is sent to the receiver.
async fn subscribe(
    address: SocketAddr,
    api_key: &str,
) -> anyhow::Result<mpsc::UnboundedReceiver<Arrival>> {
    let mut sender = http::connect(address).await?;
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v1/insights/stream")
        .header(HOST, address.to_string())
        .header(ACCEPT, "text/event-stream")
        .header("apikey", api_key)
        .body(Full::new(Bytes::new()))?;
    let response = sender
        .send_request(request)
        .await
        .context("cannot open the insight stream")?;
    anyhow::ensure!(
        response.status().is_success(),
        "the insight stream answered {}",
        response.status()
    );
    let (arrivals, received) = mpsc::unbounded_channel();
    let mut body = response.into_body();
    tokio::spawn(async move {
        // Kept alive as long as the stream is read.
        let _sender = sender;
        let mut buffer = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let at = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                if let Some(updated_at) = insight_updated_at(&message)
                    && arrivals.send(Arrival { at, updated_at }).is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(received)
}

/// `updated_at` of the insight in one Server-Sent Events message, if it is an `insight` event.
fn insight_updated_at(message: &str) -> Option<DateTime<Utc>> {
    let mut is_insight = false;
    let mut data = String::new();
    for line in message.lines() {
        if let Some(event) = line.strip_prefix("event:") {
            is_insight = event.trim() == "insight";
        } else if let Some(part) = line.strip_prefix("data:") {
            data.push_str(part.strip_prefix(' ').unwrap_or(part));
        }
    }
    if !is_insight {
        return None;
    }
    let insight: serde_json::Value = serde_json::from_str(&data).ok()?;
    insight["updated_at"].as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::insight_updated_at;

    #[test]
    fn reads_the_change_time_of_insight_events_only() {
        let insight = "event: insight\nid: 1\ndata: {\"id\":\"1\",\"updated_at\":\"2026-12-01T10:00:00.5Z\"}\n\n";
        assert_eq!(
            insight_updated_at(insight).map(|t| t.to_rfc3339()),
            Some("2026-12-01T10:00:00.500+00:00".to_owned())
        );
        assert_eq!(insight_updated_at(": keep-alive\n\n"), None);
        assert_eq!(
            insight_updated_at("event: other\ndata: {\"updated_at\":\"2026-12-01T10:00:00Z\"}\n\n"),
            None
        );
    }
}
