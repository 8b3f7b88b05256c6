//! Scale-out with real processes: two `epai serve` replicas (no workers of their own) and two
//! `epai worker` processes on one database, rate limits in Redis. Whatever replica a request
//! reaches, a partner has one budget, sees the same events and insights, and each insight job
//! runs once.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use epai_store::testing::TestDatabase;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use uuid::Uuid;

mod support;

const JWT_SECRET: &str = "scale-out-test-secret-0123456789abcdef";
/// 32 bytes, base64: every process seals and opens webhook secrets with the same key.
const WEBHOOK_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn redis_url() -> String {
    std::env::var("EPAI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Fails the test at once, with the reason, when no Redis answers (the limiter would fail open
/// and the rate-limit assertion would fail for an unrelated reason).
fn require_redis(url: &str) {
    let authority = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:6379")
    };
    let mut stream = TcpStream::connect(&address)
        .unwrap_or_else(|e| panic!("no Redis at {address} (EPAI_TEST_REDIS_URL): {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG", "Redis at {address} did not answer PING");
}

/// A child process killed when the test ends, whatever happens.
struct Process {
    child: Child,
    name: &'static str,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and the exit must be clean (drained and flushed).
    fn stop(mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn epai(database_url: &str, data_dir: &Path) -> Command {
    let mut command = support::clean_epai();
    command
        .env("DATABASE_URL", database_url)
        .env("EPAI_DATA_DIR", data_dir)
        .env("EPAI_REDIS_URL", redis_url())
        .env("EPAI_JWT_SECRET", JWT_SECRET)
        .env("EPAI_WEBHOOK_KEY", WEBHOOK_KEY)
        .env("EPAI_WEBHOOK_WORKERS", "0")
        // The PostgreSQL server is shared with other tests: few connections per process.
        .env("EPAI_DB_POOL_SIZE", "3")
        // Unauthenticated requests of every test share 127.0.0.1's budget in Redis.
        .env("EPAI_RATE_LIMIT_PER_IP", "0")
        .env("EPAI_INSIGHT_DEBOUNCE_MS", "100")
        .env("EPAI_LOG", "warn");
    command
}

/// Starts `args` and waits for the first line of its standard output (its banner).
fn spawn(mut command: Command, name: &'static str) -> (Process, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let process = Process { child, name };
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    // Keeps the pipe open (and drained) so the process never writes to a closed stdout.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (process, banner)
}

fn spawn_replica(database_url: &str, data_dir: &Path, name: &'static str) -> (Process, String) {
    let mut command = epai(database_url, data_dir);
    command
        .env("EPAI_WORKERS", "0")
        .env("EPAI_MAINTENANCE_INTERVAL_SECONDS", "0")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (process, banner) = spawn(command, name);
    let url = banner
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("{name} did not start: {banner}"))
        .trim_end_matches('/')
        .to_owned();
    (process, url)
}

fn spawn_worker(database_url: &str, data_dir: &Path, name: &'static str) -> Process {
    let mut command = epai(database_url, data_dir);
    command.env("EPAI_WORKERS", "2").arg("worker");
    let (process, banner) = spawn(command, name);
    assert!(
        banner.starts_with("EPAI workers running"),
        "{name} did not start: {banner}"
    );
    process
}

fn cli_json(database_url: &str, data_dir: &Path, args: &[&str]) -> Value {
    let output = epai(database_url, data_dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "epai {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

struct Partner {
    id: Uuid,
    key: String,
}

fn create_partner(database_url: &str, data_dir: &Path, name: &str) -> Partner {
    let email = format!("{name}@scale-out.test");
    let created = cli_json(
        database_url,
        data_dir,
        &[
            "partner", "create", "--name", name, "--email", &email, "--json",
        ],
    );
    Partner {
        id: created["partner_id"].as_str().unwrap().parse().unwrap(),
        key: created["api_key"].as_str().unwrap().to_owned(),
    }
}

async fn ingest(client: &reqwest::Client, replica: &str, key: &str, n: usize) -> reqwest::Response {
    client
        .post(format!("{replica}/v1/events"))
        .header("apikey", key)
        .json(&json!({"event_type": "page_view", "data": {"n": n}}))
        .send()
        .await
        .unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> Value {
    let response = client.get(url).header("apikey", key).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> HashSet<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `condition` holds, checking every 100 ms, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Six weeks of history, one event every six hours: enough for the models to write insights.
async fn insert_history(admin: &tokio_postgres::Client, partner: Uuid) {
    admin
        .execute(
            "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, occurred_at)
             SELECT $1, 'page_view', '{}', 'test', '1', now() - make_interval(hours => h)
             FROM generate_series(6, 42 * 24, 6) AS h",
            &[&partner],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_and_two_workers_share_limits_data_and_jobs() {
    require_redis(&redis_url());
    let db = TestDatabase::migrated().await;
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = |name: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };
    let steady = create_partner(&url, &data_dir("cli"), "steady");
    let limited = create_partner(&url, &data_dir("cli"), "limited");
    cli_json(
        &url,
        &data_dir("cli"),
        &[
            "partner",
            "limits",
            "--partner",
            &limited.id.to_string(),
            "--per-minute",
            "20",
            "--json",
        ],
    );
    let admin = db.admin().await;
    insert_history(&admin, steady.id).await;

    let worker_1 = spawn_worker(&url, &data_dir("worker-1"), "worker 1");
    let worker_2 = spawn_worker(&url, &data_dir("worker-2"), "worker 2");
    let (replica_a, a) = spawn_replica(&url, &data_dir("replica-a"), "replica a");
    let (replica_b, b) = spawn_replica(&url, &data_dir("replica-b"), "replica b");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Events ingested through either replica are read through the other.
    let mut through = [Vec::new(), Vec::new()];
    for n in 0..20 {
        let replica = [&a, &b][n % 2];
        let response = ingest(&client, replica, &steady.key, n).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        through[n % 2].push(body["id"].as_str().unwrap().to_owned());
    }
    for (replica, other) in [(&a, 1), (&b, 0)] {
        let listed = ids(&get_json(
            &client,
            &format!("{replica}/v1/events?limit=100"),
            &steady.key,
        )
        .await);
        for id in &through[other] {
            assert!(
                listed.contains(id),
                "{replica} does not list event {id} ingested elsewhere"
            );
        }
    }

    // Many jobs at once for both worker processes: thirty more partners with history, each
    // with a job per model, next to the jobs the ingest above queued for `steady`.
    let others: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    admin
        .execute(
            "INSERT INTO partners (id, name) SELECT id, 'scale ' || id FROM unnest($1::uuid[]) AS id",
            &[&others],
        )
        .await
        .unwrap();
    for partner in &others {
        insert_history(&admin, *partner).await;
    }
    admin
        .execute(
            "INSERT INTO insight_jobs (partner_id, model, scheduled_at, created_at)
             SELECT p, m, now(), now()
             FROM unnest($1::uuid[]) AS p, unnest(ARRAY['event_volume_forecast', 'anomaly_detection']) AS m
             -- The workers' schedulers may have queued some already (partners with events
             -- whose insights never ran).
             ON CONFLICT (partner_id, model) WHERE state IN ('available', 'retryable') DO NOTHING",
            &[&others],
        )
        .await
        .unwrap();
    let pending = async || -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM insight_jobs WHERE state <> 'completed'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    };
    eventually(
        Duration::from_secs(180),
        "every insight job to complete",
        async || pending().await == 0,
    )
    .await;
    let jobs = admin
        .query(
            "SELECT partner_id, model, attempt, attempted_by, errors::text FROM insight_jobs",
            &[],
        )
        .await
        .unwrap();
    let ran: HashSet<(Uuid, String)> = jobs.iter().map(|j| (j.get(0), j.get(1))).collect();
    assert!(ran.len() >= 62, "{} partner and model pairs ran", ran.len());
    let mut runs_by = HashSet::new();
    for job in &jobs {
        let (attempt, by, errors): (i32, String, String) = (job.get(2), job.get(3), job.get(4));
        assert_eq!(attempt, 1, "a job ran more than once: {by}, {errors}");
        assert_eq!(errors, "[]", "{by}");
        runs_by.insert(by.split('-').nth(1).unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(
        runs_by,
        HashSet::from([worker_1.pid(), worker_2.pid()]),
        "both worker processes ran jobs, and nothing else did"
    );
    // The workers' insights are the same through both replicas.
    let insights_a =
        ids(&get_json(&client, &format!("{a}/v1/insights?limit=100"), &steady.key).await);
    let insights_b =
        ids(&get_json(&client, &format!("{b}/v1/insights?limit=100"), &steady.key).await);
    assert!(
        !insights_a.is_empty(),
        "the workers wrote steady's insights"
    );
    assert_eq!(insights_a, insights_b);

    // One budget of 20 requests per minute for `limited`, however its requests are spread:
    // 30 to each replica at once. Alone, each replica would let 20 through (40 in all).
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..60 {
        let (client, replica, key) = (client.clone(), [&a, &b][n % 2].clone(), limited.key.clone());
        sends.spawn(async move {
            let response = ingest(&client, &replica, &key, n).await;
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or_default();
            (
                n % 2,
                status,
                retry_after,
                body["code"].as_str().unwrap_or_default().to_owned(),
            )
        });
    }
    let mut accepted = [0u32; 2];
    let mut limited_answers = [0u32; 2];
    while let Some(answer) = sends.join_next().await {
        let (replica, status, retry_after, code) = answer.unwrap();
        match status {
            202 => accepted[replica] += 1,
            429 => {
                assert!(retry_after, "429 without Retry-After");
                assert_eq!(code, "rate-limit/exceeded");
                limited_answers[replica] += 1;
            }
            other => panic!("unexpected answer {other} {code}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // GCRA gives back one request every 3 s of the burst.
    let refilled = (elapsed / 3.0).ceil() as u32;
    let total: u32 = accepted.iter().sum();
    println!("limited: accepted {accepted:?}, refused {limited_answers:?} in {elapsed:.2} s");
    assert!(
        (20..=20 + refilled).contains(&total),
        "{total} accepted over both replicas, the budget is 20 (+{refilled} refilled)"
    );
    assert!(
        limited_answers.iter().all(|&n| n > 0),
        "both replicas refused: {limited_answers:?}"
    );

    for process in [replica_a, replica_b, worker_1, worker_2] {
        process.stop();
    }
}
