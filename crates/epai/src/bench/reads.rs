//! Reads of a large partner: its events loaded in bulk inside PostgreSQL (no HTTP), then the
//! insights list and the usage summary fetched by many clients at once.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;

use super::http::{self, Budget, LoadSpec, Method};
use super::latency::LatencySummary;
use super::postgres::Owner;
use super::system::{self, CpuSnapshot, CpuUse, ProcessMemory};
use super::workload::{SOURCE, VERSION, event_data};

/// Rows per loading statement, so progress shows and no statement holds millions of rows.
const LOAD_CHUNK: i64 = 100_000;
/// The loaded events are spread evenly over this many days before now.
pub const LOAD_DAYS: i32 = 60;
/// Event types of the loaded events, in turn.
pub const LOAD_EVENT_TYPES: [&str; 4] = ["page_view", "user_engagement", "lead", "custom"];

/// The read endpoints measured, as a client calls them.
pub const READ_PATHS: [&str; 2] = ["/v1/insights?limit=20", "/v1/usage?days=30"];

#[derive(Debug, Serialize)]
pub struct LoadFigures {
    pub events: i64,
    pub days: i32,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Stores `events` events of `owner`'s partner, created (and occurred) evenly over the last
/// [`LOAD_DAYS`] days, with `INSERT ... SELECT FROM generate_series`. The months get their own
/// partitions first, as `epai maintenance` would have made them, so no row lands in the
/// default partition.
pub async fn load_events(
    admin: &tokio_postgres::Client,
    owner: Owner,
    events: i64,
) -> anyhow::Result<LoadFigures> {
    let started = Instant::now();
    admin
        .execute(
            "SELECT epai_attach_month_partition('ingestion_events', month AT TIME ZONE 'UTC')
             FROM generate_series(
                    date_trunc('month', (now() AT TIME ZONE 'UTC') - make_interval(days => $1)),
                    date_trunc('month', now() AT TIME ZONE 'UTC'),
                    interval '1 month') AS month
             WHERE NOT EXISTS (SELECT 1 FROM epai_month_partitions('ingestion_events') p
                               WHERE NOT p.is_default
                                 AND p.range_start <= month AT TIME ZONE 'UTC'
                                 AND p.range_end > month AT TIME ZONE 'UTC')",
            &[&LOAD_DAYS],
        )
        .await
        .context("cannot prepare the partitions of the loaded months")?;
    let insert = admin
        .prepare(
            "INSERT INTO ingestion_events
               (partner_id, event_type, data, source, version, occurred_at, created_at)
             SELECT $1::uuid, ($2::text[])[1 + g % cardinality($2::text[])], $3::jsonb, $4::text,
                    $5::text, at, at
             FROM generate_series($6::bigint, $7::bigint) AS g,
                  LATERAL (SELECT now() - make_interval(days => $8) * g / $9::bigint AS at) t",
        )
        .await?;
    let types: Vec<&str> = LOAD_EVENT_TYPES.to_vec();
    let data = event_data();
    let mut first = 1;
    while first <= events {
        let last = (first + LOAD_CHUNK - 1).min(events);
        admin
            .execute(
                &insert,
                &[
                    &owner.partner_id,
                    &types,
                    &data,
                    &SOURCE,
                    &VERSION,
                    &first,
                    &last,
                    &LOAD_DAYS,
                    &events,
                ],
            )
            .await
            .context("cannot load the read benchmark's events")?;
        first = last + 1;
    }
    admin.batch_execute("ANALYZE ingestion_events").await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(LoadFigures {
        events,
        days: LOAD_DAYS,
        seconds,
        rows_per_second: events as f64 / seconds.max(f64::EPSILON),
    })
}

/// One read endpoint under load.
#[derive(Debug, Serialize)]
pub struct ReadFigures {
    pub path: &'static str,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency_ms: ReadLatencyMs,
    pub server_memory: Option<ProcessMemory>,
    pub cpu: Option<CpuUse>,
}

#[derive(Debug, Serialize)]
pub struct ReadLatencyMs {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl ReadLatencyMs {
    pub fn of(summary: &LatencySummary) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            p50: ms(summary.p50_us),
            p95: ms(summary.p95_us),
            p99: ms(summary.p99_us),
            p999: ms(summary.p999_us),
            max: ms(summary.max_us),
        }
    }
}

/// `GET path` from `connections` keep-alive clients, back to back, for `phase`.
pub async fn measure(
    address: std::net::SocketAddr,
    api_key: &str,
    path: &'static str,
    connections: usize,
    phase: Duration,
    server_pid: u32,
) -> anyhow::Result<ReadFigures> {
    let spec = |budget| LoadSpec {
        address,
        method: Method::GET,
        path,
        body: Bytes::new(),
        events_per_request: 0,
        api_key: api_key.to_owned(),
        connections,
        budget,
    };
    // Warms the server's pool and PostgreSQL's cache for this query; not measured.
    http::run(spec(Budget::Requests(200))).await?;
    let before = CpuSnapshot::take(Some(server_pid));
    let outcome = http::run(spec(Budget::For(phase))).await?;
    let cpu = match (before, CpuSnapshot::take(Some(server_pid))) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    let seconds = outcome.elapsed.as_secs_f64();
    Ok(ReadFigures {
        path,
        connections,
        requests: outcome.requests,
        errors: outcome.errors,
        first_error: outcome.first_error,
        seconds,
        requests_per_second: outcome.requests as f64 / seconds,
        latency_ms: ReadLatencyMs::of(&outcome.latency),
        server_memory: system::process_memory(server_pid),
        cpu,
    })
}
