//! PostgreSQL's own ceiling on this machine, without EPAI: the same table and rows, written by
//! pgbench when it is installed, or by an equivalent client loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::scratch::ScratchDatabase;
use super::system::{CpuSnapshot, CpuUse};
use super::workload::{EVENT_TYPE, SOURCE, VERSION, event_data};

/// Rows per `INSERT ... SELECT FROM unnest(...)` statement.
pub const UNNEST_BATCH: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// One INSERT, committed on its own.
    InsertPerTransaction,
    /// What a tenant request does: become `authenticated` with claims, then INSERT, commit.
    TenantInsertPerTransaction,
    /// `UNNEST_BATCH` rows per statement, as EPAI's group commit writes them.
    UnnestBatch,
}

impl Workload {
    pub fn describe(self) -> &'static str {
        match self {
            Self::InsertPerTransaction => "one INSERT per transaction",
            Self::TenantInsertPerTransaction => "tenant role + claims + INSERT per transaction",
            Self::UnnestBatch => "INSERT ... SELECT FROM unnest, 1000 rows",
        }
    }

    fn rows_per_transaction(self) -> u64 {
        match self {
            Self::UnnestBatch => UNNEST_BATCH as u64,
            _ => 1,
        }
    }
}

/// Whom the rows belong to: the benchmark partner and its account.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub partner_id: Uuid,
    pub user_id: Uuid,
}

#[derive(Clone, Debug, Serialize)]
pub struct PostgresFigures {
    pub workload: Workload,
    pub tool: &'static str,
    pub connections: usize,
    pub transactions: u64,
    pub rows: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub mean_latency_ms: f64,
    pub cpu: Option<CpuUse>,
}

/// Runs `workload` on `connections` connections for `duration`.
pub async fn measure(
    scratch: &ScratchDatabase,
    owner: Owner,
    workload: Workload,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<PostgresFigures> {
    let before = CpuSnapshot::take(None);
    let mut figures = match (workload, pgbench()) {
        (Workload::UnnestBatch, _) | (_, None) => {
            client_loop(scratch, owner, workload, connections, duration).await?
        }
        (_, Some(pgbench)) => {
            run_pgbench(&pgbench, scratch, owner, workload, connections, duration).await?
        }
    };
    if let (Some(before), Some(after)) = (before, CpuSnapshot::take(None)) {
        figures.cpu = Some(after.since(&before));
    }
    Ok(figures)
}

/// pgbench from the PostgreSQL installation, if there is one.
fn pgbench() -> Option<PathBuf> {
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    // Newest major version first.
    versioned.sort_by_key(|dir| {
        std::cmp::Reverse(
            dir.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok()),
        )
    });
    from_pg_config
        .into_iter()
        .chain(versioned)
        .map(|dir| dir.join("pgbench"))
        .find(|path| path.is_file())
}

fn pgbench_script(owner: Owner, workload: Workload) -> String {
    let insert = format!(
        "INSERT INTO ingestion_events (id, partner_id, event_type, data, source, version, occurred_at) \
         VALUES (gen_random_uuid(), '{}', '{EVENT_TYPE}', '{}', '{SOURCE}', '{VERSION}', now());\n",
        owner.partner_id,
        event_data()
    );
    match workload {
        Workload::TenantInsertPerTransaction => format!(
            "BEGIN;\n\
             SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{}', true);\n\
             {insert}\
             COMMIT;\n",
            claims(owner)
        ),
        _ => insert,
    }
}

fn claims(owner: Owner) -> String {
    serde_json::json!({ "sub": owner.user_id, "role": "authenticated" }).to_string()
}

async fn run_pgbench(
    pgbench: &Path,
    scratch: &ScratchDatabase,
    owner: Owner,
    workload: Workload,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<PostgresFigures> {
    let script = tempfile_with(&pgbench_script(owner, workload))?;
    let config = scratch.target().admin_config();
    let mut command = tokio::process::Command::new(pgbench);
    command
        .args(["--no-vacuum", "--protocol=prepared"])
        .arg(format!("--client={connections}"))
        .arg(format!(
            "--jobs={}",
            connections.min(super::system::cores())
        ))
        .arg(format!("--time={}", duration.as_secs().max(1)))
        .arg(format!("--file={}", script.path().display()))
        .arg(format!(
            "--username={}",
            config.get_user().unwrap_or("postgres")
        ))
        .kill_on_drop(true);
    if let Some(host) = config.get_hosts().first() {
        let host = match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        };
        command.arg(format!("--host={host}"));
    }
    if let Some(port) = config.get_ports().first() {
        command.arg(format!("--port={port}"));
    }
    if let Some(password) = config.get_password() {
        command.env("PGPASSWORD", String::from_utf8_lossy(password).as_ref());
    }
    command.arg(scratch.name());
    let output = command.output().await.context("cannot run pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}\n{text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let transactions: u64 = pgbench_figure(&text, "number of transactions actually processed:")
        .context("pgbench printed no transaction count")?;
    let tps: f64 = pgbench_figure(&text, "tps =").context("pgbench printed no transaction rate")?;
    let rows = transactions * workload.rows_per_transaction();
    Ok(PostgresFigures {
        workload,
        tool: "pgbench",
        connections,
        transactions,
        rows,
        errors: pgbench_figure(&text, "number of failed transactions:").unwrap_or(0),
        seconds: if tps > 0.0 {
            transactions as f64 / tps
        } else {
            0.0
        },
        rows_per_second: tps * workload.rows_per_transaction() as f64,
        mean_latency_ms: pgbench_figure(&text, "latency average =").unwrap_or(0.0),
        cpu: None,
    })
}

/// The number after `label` on the line of pgbench's report that starts with it.
fn pgbench_figure<T: std::str::FromStr>(report: &str, label: &str) -> Option<T> {
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

fn tempfile_with(contents: &str) -> anyhow::Result<ScriptFile> {
    let path = std::env::temp_dir().join(format!("epai-bench-{}.sql", Uuid::new_v4().simple()));
    std::fs::write(&path, contents).context("cannot write the pgbench script")?;
    Ok(ScriptFile(path))
}

/// A pgbench script, removed when dropped.
struct ScriptFile(PathBuf);

impl ScriptFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const INSERT_ONE: &str = "INSERT INTO ingestion_events \
     (id, partner_id, event_type, data, source, version, occurred_at) \
     VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, now())";

const ENTER_TENANT: &str = "SELECT set_config('role', 'authenticated', true), \
     set_config('request.jwt.claims', $1, true)";

/// The statement EPAI's group commit runs (`queries/events/insert.sql`).
const INSERT_UNNEST: &str = "INSERT INTO ingestion_events \
     (id, partner_id, event_type, data, source, version, metadata, occurred_at, created_at) \
     SELECT t.id, t.partner_id, t.event_type, t.data, t.source, t.version, t.metadata, \
            t.occurred_at, coalesce(t.created_at, now()) \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], \
                 $7::jsonb[], $8::timestamptz[], $9::timestamptz[]) \
       AS t(id, partner_id, event_type, data, source, version, metadata, occurred_at, created_at)";

struct LoopTally {
    transactions: u64,
    errors: u64,
    busy: Duration,
}

async fn client_loop(
    scratch: &ScratchDatabase,
    owner: Owner,
    workload: Workload,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<PostgresFigures> {
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(scratch.admin().await?);
    }
    let data = Arc::new(event_data());
    let started = Instant::now();
    let deadline = started + duration;
    let mut loops = JoinSet::new();
    for client in clients {
        loops.spawn(run_loop(client, owner, workload, data.clone(), deadline));
    }
    let mut tallies = Vec::with_capacity(connections);
    while let Some(tally) = loops.join_next().await {
        tallies.push(tally??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let transactions: u64 = tallies.iter().map(|t| t.transactions).sum();
    let busy: Duration = tallies.iter().map(|t| t.busy).sum();
    let rows = transactions * workload.rows_per_transaction();
    Ok(PostgresFigures {
        workload,
        tool: "tokio-postgres",
        connections,
        transactions,
        rows,
        errors: tallies.iter().map(|t| t.errors).sum(),
        seconds,
        rows_per_second: rows as f64 / seconds,
        mean_latency_ms: busy.as_secs_f64() * 1000.0 / transactions.max(1) as f64,
        cpu: None,
    })
}

async fn run_loop(
    mut client: tokio_postgres::Client,
    owner: Owner,
    workload: Workload,
    data: Arc<Value>,
    deadline: Instant,
) -> anyhow::Result<LoopTally> {
    let insert_one = client.prepare(INSERT_ONE).await?;
    let enter_tenant = client.prepare(ENTER_TENANT).await?;
    let insert_unnest = client.prepare(INSERT_UNNEST).await?;
    let claims = claims(owner);
    let batch = UnnestColumns::new(owner.partner_id, &data, UNNEST_BATCH);
    let mut tally = LoopTally {
        transactions: 0,
        errors: 0,
        busy: Duration::ZERO,
    };
    while Instant::now() < deadline {
        let started = Instant::now();
        let outcome = match workload {
            Workload::InsertPerTransaction => client
                .execute(
                    &insert_one,
                    &[&owner.partner_id, &EVENT_TYPE, &*data, &SOURCE, &VERSION],
                )
                .await
                .map(drop),
            Workload::TenantInsertPerTransaction => {
                async {
                    let tx = client.transaction().await?;
                    tx.execute(&enter_tenant, &[&claims]).await?;
                    tx.execute(
                        &insert_one,
                        &[&owner.partner_id, &EVENT_TYPE, &*data, &SOURCE, &VERSION],
                    )
                    .await?;
                    tx.commit().await
                }
                .await
            }
            Workload::UnnestBatch => {
                let ids: Vec<Uuid> = (0..UNNEST_BATCH).map(|_| Uuid::now_v7()).collect();
                let now = chrono::Utc::now();
                let occurred = vec![now; UNNEST_BATCH];
                client
                    .execute(
                        &insert_unnest,
                        &[
                            &ids,
                            &batch.partner_ids,
                            &batch.event_types,
                            &batch.data,
                            &batch.sources,
                            &batch.versions,
                            &batch.metadata,
                            &occurred,
                            &batch.created_at,
                        ],
                    )
                    .await
                    .map(drop)
            }
        };
        tally.busy += started.elapsed();
        match outcome {
            Ok(()) => tally.transactions += 1,
            Err(e) => {
                tally.errors += 1;
                tracing::warn!(error = %e, "benchmark transaction failed");
            }
        }
    }
    Ok(tally)
}

/// The columns of one unnest batch that stay the same from statement to statement.
struct UnnestColumns {
    partner_ids: Vec<Uuid>,
    event_types: Vec<&'static str>,
    data: Vec<Value>,
    sources: Vec<&'static str>,
    versions: Vec<&'static str>,
    metadata: Vec<Option<Value>>,
    created_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
}

impl UnnestColumns {
    fn new(partner_id: Uuid, data: &Value, rows: usize) -> Self {
        Self {
            partner_ids: vec![partner_id; rows],
            event_types: vec![EVENT_TYPE; rows],
            data: vec![data.clone(); rows],
            sources: vec![SOURCE; rows],
            versions: vec![VERSION; rows],
            metadata: vec![None; rows],
            created_at: vec![None; rows],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_report() {
        let report = "transaction type: script.sql\n\
            number of clients: 8\n\
            number of transactions actually processed: 41234\n\
            number of failed transactions: 0 (0.000%)\n\
            latency average = 1.939 ms\n\
            initial connection time = 12.345 ms\n\
            tps = 4123.456789 (without initial connection time)\n";
        assert_eq!(
            pgbench_figure::<u64>(report, "number of transactions actually processed:"),
            Some(41234)
        );
        assert_eq!(
            pgbench_figure::<u64>(report, "number of failed transactions:"),
            Some(0)
        );
        assert_eq!(
            pgbench_figure::<f64>(report, "latency average ="),
            Some(1.939)
        );
        assert_eq!(pgbench_figure::<f64>(report, "tps ="), Some(4123.456789));
    }
}
