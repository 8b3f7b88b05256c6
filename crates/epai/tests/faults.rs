//! Faults a real deployment meets, with real processes: PostgreSQL stopped under ingest load,
//! and an insight worker killed in the middle of a job.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use epai_store::embedded::ServerBinaries;
use epai_store::testing::TestDatabase;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::Mutex;
use uuid::Uuid;

mod support;
use support::epai;

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

fn json_output(command: &mut Command) -> serde_json::Value {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until `condition` holds, checking every 50 ms, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The embedded cluster `epai serve` runs in `<dir>/.epai`, driven with `pg_ctl` as the user
/// it runs as, the way an operator (or a crash) would stop and start it under the server.
#[derive(Clone)]
struct Cluster {
    pgdata: PathBuf,
    socket_dir: PathBuf,
    pg_ctl: PathBuf,
}

impl Cluster {
    fn of(dir: &Path) -> Self {
        let binaries = ServerBinaries::locate(None, &ServerBinaries::default_candidates()).unwrap();
        let data_dir = dir.canonicalize().unwrap().join(".epai");
        Self {
            pgdata: data_dir.join("pgdata"),
            socket_dir: data_dir.join("run"),
            pg_ctl: binaries.bindir.join("pg_ctl"),
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut command = Command::new(&self.pg_ctl);
        command.args(args).arg("-D").arg(&self.pgdata);
        if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("the postgres user runs the cluster");
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops PostgreSQL the way a restart or failover does: open sessions are terminated.
    fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"]);
    }

    fn start(&self) {
        let log = self.pgdata.join("postgres.log");
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", log.to_str().unwrap()]);
    }

    async fn admin(&self) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .user("postgres")
            .dbname("epai");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

/// `epai serve` on a free port in `dir`; returns the child and its base URL once it listens.
fn spawn_serve(dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = epai()
        .current_dir(dir)
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        // The outage is logged at length, by design; the test reads the answers instead.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("serve did not start: {line}"))
        .to_owned();
    (child, url)
}

/// What the load generator saw.
#[derive(Default)]
struct Tally {
    sent: usize,
    acknowledged: Vec<Uuid>,
    refused: usize,
    /// Anything but 202 or a well-formed 503: a 500, a hang, a dropped connection, a body
    /// without its problem code or Retry-After.
    wrong: Vec<String>,
}

async fn send_one(client: &reqwest::Client, url: &str, key: &str, i: usize, tally: &Mutex<Tally>) {
    let sent = client
        .post(format!("{url}/v1/events"))
        .header("apikey", key)
        .json(&serde_json::json!({"event_type": "tick", "data": {"i": i}}))
        .send()
        .await;
    let mut tally = tally.lock().await;
    tally.sent += 1;
    match sent {
        Ok(response) if response.status() == 202 => {
            let body: serde_json::Value = response.json().await.unwrap();
            tally
                .acknowledged
                .push(body["id"].as_str().unwrap().parse().unwrap());
        }
        Ok(response) if response.status() == 503 => {
            let retry_after = response.headers().get("retry-after").cloned();
            let content_type = response.headers().get("content-type").cloned();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let code = body["code"].as_str().unwrap_or_default();
            let generic = body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("retry shortly") && !d.contains("postgres"));
            if retry_after.is_some()
                && content_type.is_some_and(|ct| ct == "application/problem+json")
                && matches!(code, "service/unavailable" | "service/timeout")
                && generic
            {
                tally.refused += 1;
            } else {
                tally.wrong.push(format!("malformed 503: {body}"));
            }
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            tally.wrong.push(format!("{status}: {body}"));
        }
        Err(e) => tally.wrong.push(format!("no answer: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_ingest_load_gets_503s_loses_nothing_acknowledged_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = spawn_serve(
        dir.path(),
        &[
            ("EPAI_RATE_LIMIT_PER_KEY", "0"),
            ("EPAI_REQUEST_TIMEOUT_SECONDS", "5"),
            ("EPAI_INSIGHT_DEBOUNCE_MS", "0"),
        ],
    );
    let created = json_output(epai().current_dir(dir.path()).args([
        "partner",
        "create",
        "--name",
        "Steady",
        "--email",
        "steady@faults.test",
        "--json",
    ]));
    let key = created["api_key"].as_str().unwrap().to_owned();
    let cluster = Cluster::of(dir.path());

    // Eight clients send events one after another, as fast as they are answered, each request
    // allowed 15 s (the server's own limit is 5 s): a slower answer counts as a hang.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..8 {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        let (tally, running) = (tally.clone(), running.clone());
        clients.spawn(async move {
            let mut i = c * 1_000_000;
            // Bounded: at most 20 000 requests per client, whatever happens.
            while running.load(Ordering::Relaxed) && i < c * 1_000_000 + 20_000 {
                send_one(&client, &url, &key, i, &tally).await;
                i += 1;
            }
        });
    }
    let acknowledged = async || tally.lock().await.acknowledged.len();
    let refused = async || tally.lock().await.refused;
    eventually(
        Duration::from_secs(60),
        "200 events acknowledged",
        async || acknowledged().await >= 200,
    )
    .await;

    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let acknowledged_before_outage = acknowledged().await;
    eventually(
        Duration::from_secs(60),
        "100 requests refused",
        async || refused().await >= 100,
    )
    .await;

    let restarted_at = chrono::Utc::now();
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .unwrap();
    let after_restart = acknowledged().await;
    let refused_before_restart = refused().await;
    eventually(
        Duration::from_secs(60),
        "200 more events acknowledged after the restart",
        async || acknowledged().await >= after_restart + 200,
    )
    .await;
    running.store(false, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}

    let tally = tally.lock().await;
    println!(
        "sent {}, acknowledged {} ({} before the outage), refused {} ({} once PostgreSQL was back)",
        tally.sent,
        tally.acknowledged.len(),
        acknowledged_before_outage,
        tally.refused,
        tally.refused - refused_before_restart
    );
    assert!(
        tally.wrong.is_empty(),
        "unexpected answers: {:?}",
        tally.wrong
    );
    let unique: HashSet<_> = tally.acknowledged.iter().collect();
    assert_eq!(unique.len(), tally.acknowledged.len(), "ids are unique");

    let admin = cluster.admin().await;
    let found: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE id = ANY($1)",
            &[&tally.acknowledged],
        )
        .await
        .unwrap()
        .get(0);
    let stored: i64 = admin
        .query_one("SELECT count(*) FROM ingestion_events", &[])
        .await
        .unwrap()
        .get(0);
    println!("found {found} of the acknowledged events; {stored} events stored in all");
    assert_eq!(
        found as usize,
        tally.acknowledged.len(),
        "every acknowledged event is stored"
    );

    // The request logs reconnected too, and kept the outage's records until they could be
    // stored: every answer the clients got is logged.
    let logged = async |status: i32| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM logs WHERE endpoint = '/v1/events' AND status = $1",
                &[&status],
            )
            .await
            .unwrap()
            .get(0)
    };
    let (answered_202, answered_503) = (tally.acknowledged.len() as i64, tally.refused as i64);
    eventually(
        Duration::from_secs(30),
        "every answer in the request log",
        async || logged(202).await == answered_202 && logged(503).await == answered_503,
    )
    .await;
    println!("logged {answered_202} acknowledgements and {answered_503} refusals");

    // The insight worker in the server reconnected as well: events ingested after the restart
    // were turned into insights.
    eventually(
        Duration::from_secs(60),
        "an insight job completed after the restart",
        async || {
            admin
                .query_one(
                    "SELECT count(*) FROM insight_jobs WHERE state = 'completed' AND finished_at > $1",
                    &[&restarted_at],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                > 0
        },
    )
    .await;

    signal(&server, Signal::SIGTERM);
    assert!(server.wait().unwrap().success(), "graceful exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_in_the_middle_of_a_job_leaves_it_to_the_next_worker() {
    let db = TestDatabase::migrated().await;
    let created = json_output(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "create",
        "--name",
        "Patient",
        "--email",
        "patient@faults.test",
        "--json",
    ]));
    let partner: Uuid = created["partner_id"].as_str().unwrap().parse().unwrap();
    let mut admin = db.admin().await;
    admin
        .execute(
            "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, occurred_at)
             SELECT $1, 'page_view', '{}', 'test', '1', now() - make_interval(hours => h)
             FROM generate_series(0, 40 * 24, 6) AS h",
            &[&partner],
        )
        .await
        .unwrap();
    let job: i64 = admin
        .query_one(
            "INSERT INTO insight_jobs (partner_id, model, scheduled_at, created_at)
             VALUES ($1, 'event_volume_forecast', now(), now()) RETURNING id",
            &[&partner],
        )
        .await
        .unwrap()
        .get(0);

    // Insights cannot be written while this transaction holds the table: the worker that
    // takes the job stops in the middle of it.
    let blocker = admin.transaction().await.unwrap();
    blocker
        .batch_execute("LOCK TABLE insights IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let worker = |visibility: &str| {
        epai()
            .env("DATABASE_URL", db.url())
            .env("EPAI_WORKERS", "1")
            .env("EPAI_JOB_VISIBILITY_SECONDS", visibility)
            .arg("worker")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = worker("2");
    let watcher = db.admin().await;
    let job_row = async || {
        let row = watcher
            .query_one(
                "SELECT state::text, attempt, attempted_by, errors::text FROM insight_jobs WHERE id = $1",
                &[&job],
            )
            .await
            .unwrap();
        (
            row.get::<_, String>(0),
            row.get::<_, i32>(1),
            row.get::<_, Option<String>>(2).unwrap_or_default(),
            row.get::<_, String>(3),
        )
    };
    let first_id = format!("worker-{}-", first.id());
    eventually(
        Duration::from_secs(30),
        "the first worker to hold the job and wait for the insights table",
        async || {
            let (state, _, by, _) = job_row().await;
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks
                     WHERE NOT granted AND relation = 'insights'::regclass
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            state == "running" && by.starts_with(&first_id) && waiting > 0
        },
    )
    .await;
    signal(&first, Signal::SIGKILL);
    first.wait().unwrap();
    blocker.rollback().await.unwrap();

    let mut second = worker("60");
    let second_id = format!("worker-{}-", second.id());
    eventually(
        Duration::from_secs(60),
        "the job to be completed by the second worker",
        async || job_row().await.0 == "completed",
    )
    .await;
    let (_, attempt, by, errors) = job_row().await;
    println!("job {job}: attempt {attempt} by {by}; errors {errors}");
    assert_eq!(attempt, 2, "run again once");
    assert!(by.starts_with(&second_id), "{by}");
    assert!(
        errors.contains("did not finish before its visibility timeout")
            && errors.contains(&first_id),
        "{errors}"
    );
    let insights: i64 = watcher
        .query_one(
            "SELECT count(*) FROM insights WHERE partner_id = $1",
            &[&partner],
        )
        .await
        .unwrap()
        .get(0);
    assert!(insights > 0, "the second run wrote the insights");
    signal(&second, Signal::SIGTERM);
    assert!(second.wait().unwrap().success());
}
