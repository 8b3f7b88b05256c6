//! `epai bench`: EPAI measured against the database's own ceiling, on this machine, in one run.
//!
//! Everything happens in a fresh database that is dropped at the end (also on error or Ctrl-C):
//! `epai serve` runs as a child process; PostgreSQL alone writes the rows EPAI would write
//! (pgbench or a client loop), each such phase followed by the one where a load generator sends
//! EPAI the same events over HTTP; then
//! one partner gets a million events (a quarter of them with `--quick`) and the server is timed
//! turning a new event into an insight on its live stream and answering reads for that partner;
//! finally key verification is timed against many stored keys. `--forecast` instead times a
//! partner's volume forecast over a million events (`forecast`).

mod forecast;
mod freshness;
mod http;
mod keys;
mod latency;
mod postgres;
mod reads;
mod report;
mod scratch;
mod server;
mod system;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use epai_domain::{AuthUserId, Email, PartnerName};
use epai_store::{NewPartner, Store, StoreOptions};
use serde::Serialize;

use crate::config::GlobalArgs;
use http::{Budget, LoadOutcome, LoadSpec, Method};
use keys::KeyPlan;
use postgres::{Owner, Workload};
use report::{Measured, Report};
use scratch::ScratchDatabase;
use server::ServerProcess;
use system::{CpuSnapshot, CpuUse, ProcessMemory};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Events per `POST /v1/events/batch`, the API's maximum.
const BATCH_EVENTS: usize = 1000;

/// Concurrent clients of the read phases.
const READ_CONNECTIONS: usize = 32;
/// Events ingested one by one to time event-to-insight.
const FRESHNESS_SAMPLES: usize = 20;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Shorter phases (about 3 s each) and a partner of 250k instead of 1M events for the
    /// reads: done in under two minutes.
    #[arg(long)]
    quick: bool,
    /// Events of the partner whose reads are measured [default: 1000000, 250000 with --quick].
    #[arg(long, value_name = "N")]
    read_events: Option<u32>,
    /// Stored API keys key verification is timed against.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    keys: u32,
    /// Also write every figure to this file as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Only time the event volume forecast of one partner with many events (feature
    /// extraction in SQL plus the forecasts), instead of ingest and key verification.
    #[arg(long)]
    forecast: bool,
    /// Events the `--forecast` partner has.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        requires = "forecast"
    )]
    forecast_events: u64,
}

/// How long and how large each phase is.
struct Plan {
    phase: Duration,
    read_events: i64,
    keys: KeyPlan,
}

impl Plan {
    fn new(args: &BenchArgs) -> Self {
        let keys = usize::try_from(args.keys.max(2)).unwrap_or(usize::MAX);
        let (phase, read_events, uncached_samples, cached_samples, bcrypt_verifications) =
            if args.quick {
                (3, 250_000, 2_000, 20_000, 2)
            } else {
                (10, 1_000_000, 10_000, 100_000, 5)
            };
        Self {
            phase: Duration::from_secs(phase),
            read_events: args.read_events.map_or(read_events, i64::from),
            keys: KeyPlan {
                keys,
                uncached_samples: uncached_samples.min(keys - 1),
                cached_samples,
                bcrypt_verifications,
            },
        }
    }
}

pub async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<()> {
    let server_url = global.database_url.as_deref().unwrap_or(DEFAULT_SERVER);
    let scratch = ScratchDatabase::create(server_url).await?;
    progress(&format!("benchmark database {} created", scratch.name()));
    if args.forecast {
        let measured = tokio::select! {
            measured = measure_forecast(&scratch, args.forecast_events) => measured,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        let name = scratch.name().to_owned();
        let dropped = scratch.drop_database().await;
        let figures = measured?;
        dropped?;
        progress(&format!("benchmark database {name} dropped"));
        print!("{}", figures.table());
        return write_json(args.json.as_deref(), &figures);
    }
    let plan = Plan::new(&args);
    // Dropping the measurement on Ctrl-C kills its child processes (kill_on_drop).
    let measured = tokio::select! {
        measured = measure(&scratch, &plan, global.db_pool_size) => measured,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let name = scratch.name().to_owned();
    let dropped = scratch.drop_database().await;
    let report = measured?;
    dropped?;
    progress(&format!("benchmark database {name} dropped"));
    print!("{}", report.table());
    write_json(args.json.as_deref(), &report)?;
    if report.has_failures() {
        anyhow::bail!("the benchmark saw errors or lost rows; its figures are not trustworthy");
    }
    Ok(())
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

fn write_json(path: Option<&std::path::Path>, figures: &impl Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_string_pretty(figures)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn measure_forecast(
    scratch: &ScratchDatabase,
    events: u64,
) -> anyhow::Result<forecast::ForecastFigures> {
    let store = Store::connect(scratch.target(), &StoreOptions::default())?;
    let (_, owner) = create_partner(&store).await?;
    progress(&format!(
        "loading {events} events for one partner, then timing its forecast"
    ));
    forecast::measure(scratch, &store, owner.partner_id, events).await
}

async fn measure(
    scratch: &ScratchDatabase,
    plan: &Plan,
    pool_size: usize,
) -> anyhow::Result<Report> {
    let admin = scratch.admin().await?;
    let postgres_version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let store = Store::connect(
        scratch.target(),
        &StoreOptions {
            pool_size: pool_size.max(1),
            ..StoreOptions::default()
        },
    )?;
    let (partner, owner) = create_partner(&store).await?;
    let api_key = crate::issue_key(&store, partner).await?.key;

    progress("starting epai serve");
    let server = ServerProcess::start(scratch.url(), pool_size).await?;
    warm_up(&server, &api_key).await?;
    let mut postgres_figures = Vec::new();
    let mut http_figures = Vec::new();
    for phase in INGEST_PHASES {
        reset_events(&admin).await?;
        match phase {
            IngestPhase::Postgres(workload, connections) => {
                progress(&format!(
                    "PostgreSQL alone: {}, {connections} connections, {} s",
                    workload.describe(),
                    plan.phase.as_secs()
                ));
                postgres_figures.push(
                    postgres::measure(scratch, owner, workload, connections, plan.phase).await?,
                );
            }
            IngestPhase::Http(path, events, connections) => {
                progress(&format!(
                    "EPAI over HTTP: POST {path}, {events} events per request, {connections} connections, {} s",
                    plan.phase.as_secs()
                ));
                let spec = LoadSpec {
                    address: server.address(),
                    method: Method::POST,
                    path,
                    body: Bytes::from(if events == 1 {
                        workload::single_event_body()
                    } else {
                        workload::batch_body(events)
                    }),
                    events_per_request: events as u64,
                    api_key: api_key.clone(),
                    connections,
                    budget: Budget::For(plan.phase),
                };
                let figures = http_phase(&admin, owner, spec, Some(server.pid())).await?;
                figures.warn_if_failed();
                http_figures.push(figures);
            }
        }
    }

    reset_events(&admin).await?;
    progress(&format!(
        "reads: loading {} events of one partner over {} days",
        plan.read_events,
        reads::LOAD_DAYS
    ));
    let load = reads::load_events(&admin, owner, plan.read_events).await?;
    progress(&format!(
        "event to insight: {FRESHNESS_SAMPLES} events, each timed until its insight is on the stream"
    ));
    let freshness =
        freshness::measure(server.address(), &api_key, &admin, owner, FRESHNESS_SAMPLES).await?;
    let mut read_figures = Vec::new();
    for path in reads::READ_PATHS {
        progress(&format!(
            "reads: GET {path}, {READ_CONNECTIONS} connections, {} s",
            plan.phase.as_secs()
        ));
        read_figures.push(
            reads::measure(
                server.address(),
                &api_key,
                path,
                READ_CONNECTIONS,
                plan.phase,
                server.pid(),
            )
            .await?,
        );
    }
    let server_memory = system::process_memory(server.pid());
    server.stop().await?;

    progress(&format!(
        "key verification: storing {} keys, then verifying",
        plan.keys.keys
    ));
    let key_figures = keys::measure(scratch, &plan.keys).await?;

    Ok(Report::new(Measured {
        phase: plan.phase,
        postgres_version,
        postgres: postgres_figures,
        http: http_figures,
        load,
        freshness,
        reads: read_figures,
        server_memory,
        keys: key_figures,
    }))
}

/// One ingest phase: PostgreSQL on its own, or EPAI over HTTP (path, events per request).
#[derive(Clone, Copy)]
enum IngestPhase {
    Postgres(Workload, usize),
    Http(&'static str, usize, usize),
}

/// Each EPAI phase runs right after the PostgreSQL phase it is compared with: the speed of a
/// shared machine drifts over minutes (its disk flush above all), and a ratio is only worth
/// something when both sides saw the same machine.
const INGEST_PHASES: [IngestPhase; 10] = [
    IngestPhase::Postgres(Workload::InsertPerTransaction, 8),
    IngestPhase::Http("/v1/events", 1, 8),
    IngestPhase::Postgres(Workload::InsertPerTransaction, 32),
    IngestPhase::Http("/v1/events", 1, 32),
    IngestPhase::Postgres(Workload::TenantInsertPerTransaction, 8),
    IngestPhase::Postgres(Workload::TenantInsertPerTransaction, 32),
    IngestPhase::Postgres(Workload::UnnestBatch, 2),
    IngestPhase::Http("/v1/events/batch", BATCH_EVENTS, 2),
    IngestPhase::Postgres(Workload::UnnestBatch, 8),
    IngestPhase::Http("/v1/events/batch", BATCH_EVENTS, 8),
];

/// The partner whose events every phase writes, and the account its tenant requests act as.
async fn create_partner(store: &Store) -> anyhow::Result<(AuthUserId, Owner)> {
    let new = NewPartner {
        name: PartnerName::parse("EPAI Bench")?,
        email: Email::parse("bench@example.com")?,
        password_hash: None,
    };
    let partner = store
        .as_service_role(async |service| service.create_partner(&new).await)
        .await?;
    let user = partner.require_user()?;
    let owner = Owner {
        partner_id: partner.id.as_uuid(),
        user_id: user.as_uuid(),
    };
    Ok((user, owner))
}

/// Opens the server's database connections and caches the key before anything is timed.
async fn warm_up(server: &ServerProcess, api_key: &str) -> anyhow::Result<()> {
    let outcome = http::run(LoadSpec {
        address: server.address(),
        method: Method::POST,
        path: "/v1/events",
        body: Bytes::from(workload::single_event_body()),
        events_per_request: 1,
        api_key: api_key.to_owned(),
        connections: 32,
        budget: Budget::Requests(500),
    })
    .await?;
    anyhow::ensure!(
        outcome.errors == 0,
        "the server rejected warm-up requests: {}",
        outcome.first_error.as_deref().unwrap_or("?")
    );
    Ok(())
}

/// Every phase starts from an empty table and a fresh checkpoint, so none pays for another's rows.
async fn reset_events(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    admin
        .batch_execute("TRUNCATE ingestion_events; CHECKPOINT")
        .await
        .context("cannot empty ingestion_events between phases")
}

/// One HTTP load phase and what it left in the table.
#[derive(Debug, Serialize)]
pub struct HttpFigures {
    pub path: &'static str,
    pub events_per_request: u64,
    pub connections: usize,
    pub requests: u64,
    pub acknowledged_events: u64,
    /// Rows of the partner in `ingestion_events` after the phase.
    pub stored_rows: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub events_per_second: f64,
    pub latency_ms: LatencyMs,
    pub server_memory: Option<ProcessMemory>,
    pub cpu: Option<CpuUse>,
}

#[derive(Debug, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl HttpFigures {
    /// Acknowledged events missing from the table: must be 0, or a 2xx lied.
    pub fn lost_events(&self) -> u64 {
        self.acknowledged_events.saturating_sub(self.stored_rows)
    }

    fn warn_if_failed(&self) {
        if self.errors > 0 {
            eprintln!(
                "\n!!! {} of {} requests to {} FAILED; first: {}\n",
                self.errors,
                self.requests,
                self.path,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        if self.lost_events() > 0 {
            eprintln!(
                "\n!!! {} ACKNOWLEDGED EVENTS ARE MISSING from ingestion_events ({} acknowledged, {} stored)\n",
                self.lost_events(),
                self.acknowledged_events,
                self.stored_rows
            );
        }
    }
}

/// Runs one load phase against `spec.address`, then counts what the partner has stored.
/// `server_pid` is the server process whose memory and CPU are reported, if known.
pub async fn http_phase(
    admin: &tokio_postgres::Client,
    owner: Owner,
    spec: LoadSpec,
    server_pid: Option<u32>,
) -> anyhow::Result<HttpFigures> {
    let before = CpuSnapshot::take(server_pid);
    let (path, events_per_request, connections) =
        (spec.path, spec.events_per_request, spec.connections);
    let outcome: LoadOutcome = http::run(spec).await?;
    let cpu = match (before, CpuSnapshot::take(server_pid)) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    let server_memory = server_pid.and_then(system::process_memory);
    let stored: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE partner_id = $1",
            &[&owner.partner_id],
        )
        .await?
        .get(0);
    let seconds = outcome.elapsed.as_secs_f64();
    let ms = |micros: u64| micros as f64 / 1000.0;
    Ok(HttpFigures {
        path,
        events_per_request,
        connections,
        requests: outcome.requests,
        acknowledged_events: outcome.acknowledged_events,
        stored_rows: u64::try_from(stored).unwrap_or(0),
        errors: outcome.errors,
        first_error: outcome.first_error,
        seconds,
        requests_per_second: outcome.requests as f64 / seconds,
        events_per_second: outcome.acknowledged_events as f64 / seconds,
        latency_ms: LatencyMs {
            p50: ms(outcome.latency.p50_us),
            p99: ms(outcome.latency.p99_us),
            p999: ms(outcome.latency.p999_us),
            max: ms(outcome.latency.max_us),
        },
        server_memory,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use epai_server::ServerSettings;
    use epai_server::rate_limit::Quota;
    use epai_store::testing::TestDatabase;

    use super::*;

    #[tokio::test]
    async fn load_phase_counts_exactly_what_was_stored() {
        let db = TestDatabase::migrated().await;
        let store = db.store();
        let (user, owner) = create_partner(&store).await.unwrap();
        let api_key = crate::issue_key(&store, user).await.unwrap().key;
        let mut settings = ServerSettings::default();
        settings.rate_limits.per_key = Quota::OFF;
        settings.rate_limits.per_ip = Quota::OFF;
        let jwt = epai_server::JwtKeys::from_secret(&[7; 32]).unwrap();
        let (state, background) = epai_server::start(store, settings, jwt).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            epai_server::serve_with_listener(state, listener, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
            background.shutdown().await;
        });

        let spec = LoadSpec {
            address,
            method: Method::POST,
            path: "/v1/events",
            body: Bytes::from(workload::single_event_body()),
            events_per_request: 1,
            api_key,
            connections: 4,
            budget: Budget::Requests(50),
        };
        let figures = http_phase(&db.admin().await, owner, spec, None)
            .await
            .unwrap();

        assert_eq!(figures.errors, 0, "{:?}", figures.first_error);
        assert_eq!(figures.requests, 50);
        assert_eq!(figures.acknowledged_events, 50);
        assert_eq!(figures.stored_rows, figures.acknowledged_events);
        assert_eq!(figures.lost_events(), 0);
        let _ = stop.send(());
        server.await.unwrap();
    }
}
