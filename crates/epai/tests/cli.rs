//! The `epai` binary as an operator uses it: real processes, a real database, real signals.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use epai_domain::ApiKey;
use epai_store::testing::TestDatabase;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod support;
use support::epai;

fn run(command: &mut Command) -> Output {
    command.output().expect("epai runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "epai failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).expect("JSON output")
}

#[test]
fn version_and_help_for_every_command() {
    let version = stdout(&run(epai().arg("--version")));
    assert_eq!(
        version.trim(),
        format!("epai {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["partner", "--help"],
        vec!["partner", "create", "--help"],
        vec!["partner", "limits", "--help"],
        vec!["key", "--help"],
        vec!["key", "rotate", "--help"],
        vec!["demo", "--help"],
        vec!["bench", "--help"],
        vec!["worker", "--help"],
        vec!["maintenance", "--help"],
        vec!["model", "--help"],
        vec!["model", "register", "--help"],
        vec!["model", "list", "--help"],
    ] {
        let help = stdout(&run(epai().args(&args)));
        assert!(help.contains("Usage: epai"), "{args:?}: {help}");
        assert!(help.len() > 200, "{args:?} has too little help: {help}");
    }
}

#[tokio::test]
async fn partner_create_and_key_rotate_against_database_url() {
    let db = TestDatabase::migrated().await;
    let created = json(&run(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "create",
        "--name",
        "Acme Events",
        "--email",
        "Ops@Acme.test",
        "--json",
    ])));
    let first = created["api_key"].as_str().unwrap().to_owned();
    ApiKey::parse(&first).expect("a well-formed key");
    assert_eq!(created["email"], "ops@acme.test");

    let admin = db.admin().await;
    let stored_hash = async || -> String {
        admin
            .query_one("SELECT key_hash FROM api_keys", &[])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(
        stored_hash().await,
        ApiKey::parse(&first).unwrap().hash().as_str()
    );

    let rotated = json(&run(epai().env("DATABASE_URL", db.url()).args([
        "key",
        "rotate",
        "--partner",
        "ops@acme.test",
        "--json",
    ])));
    let second = rotated["api_key"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(rotated["partner_id"], created["partner_id"]);
    assert_eq!(
        stored_hash().await,
        ApiKey::parse(second).unwrap().hash().as_str()
    );

    let by_id = json(&run(epai().env("DATABASE_URL", db.url()).args([
        "key",
        "rotate",
        "--partner",
        created["partner_id"].as_str().unwrap(),
        "--json",
    ])));
    assert_eq!(by_id["partner_id"], created["partner_id"]);

    let duplicate = run(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "create",
        "--name",
        "Again",
        "--email",
        "ops@acme.test",
    ]));
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));

    let unknown = run(epai().env("DATABASE_URL", db.url()).args([
        "key",
        "rotate",
        "--partner",
        "nobody@acme.test",
    ]));
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no partner"));

    let bad_email = run(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "create",
        "--name",
        "X",
        "--email",
        "not-an-email",
    ]));
    assert!(!bad_email.status.success());
    assert!(String::from_utf8_lossy(&bad_email.stderr).contains("--email"));
}

fn stderr_of_failure(output: &Output) -> String {
    assert!(!output.status.success(), "epai should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn partner_limits_shows_sets_and_clears_a_partners_quota() {
    let db = TestDatabase::migrated().await;
    let limits = |args: &[&str]| {
        let mut command = epai();
        command
            .env("DATABASE_URL", db.url())
            .args(["partner", "limits", "--partner", "ops@quota.test"])
            .args(args);
        run(&mut command)
    };
    let created = json(&run(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "create",
        "--name",
        "Quota Co",
        "--email",
        "ops@quota.test",
        "--json",
    ])));
    let stored = async || -> Option<i32> {
        db.admin()
            .await
            .query_one("SELECT rate_limit_per_minute FROM partners", &[])
            .await
            .unwrap()
            .get(0)
    };

    let shown = json(&limits(&["--json"]));
    assert_eq!(shown["partner_id"], created["partner_id"]);
    assert_eq!(shown["rate_limit_per_minute"], serde_json::Value::Null);
    assert_eq!(shown["effective_per_minute"], 120);
    assert_eq!(shown["source"], "default");

    let set = json(&limits(&["--per-minute", "600", "--json"]));
    assert_eq!(set["rate_limit_per_minute"], 600);
    assert_eq!(set["effective_per_minute"], 600);
    assert_eq!(set["source"], "partner");
    assert_eq!(stored().await, Some(600));

    let text = stdout(&limits(&["--per-minute", "0"]));
    assert!(text.contains("unlimited (set for this partner)"), "{text}");
    assert_eq!(stored().await, Some(0));

    let cleared = json(&limits(&["--default", "--json"]));
    assert_eq!(cleared["rate_limit_per_minute"], serde_json::Value::Null);
    assert_eq!(cleared["source"], "default");
    assert_eq!(stored().await, None);

    let configured = json(&run(epai()
        .env("DATABASE_URL", db.url())
        .env("EPAI_RATE_LIMIT_PER_KEY", "45")
        .args(["partner", "limits", "--partner", "ops@quota.test", "--json"])));
    assert_eq!(configured["effective_per_minute"], 45);

    let negative = stderr_of_failure(&limits(&["--per-minute", "-5"]));
    assert!(negative.contains("must be 0 or more"), "{negative}");
    let not_a_number = stderr_of_failure(&limits(&["--per-minute", "lots"]));
    assert!(not_a_number.contains("whole number"), "{not_a_number}");
    let both = stderr_of_failure(&limits(&["--per-minute", "5", "--default"]));
    assert!(both.contains("cannot be used with"), "{both}");
    assert_eq!(stored().await, None, "refused commands changed nothing");

    let unknown = stderr_of_failure(&run(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "limits",
        "--partner",
        "nobody@quota.test",
        "--per-minute",
        "10",
    ])));
    assert!(
        unknown.contains("no partner nobody@quota.test"),
        "{unknown}"
    );
}

#[tokio::test]
async fn demo_loads_weeks_of_varied_events_once() {
    let db = TestDatabase::migrated().await;
    let first = stdout(&run(epai().env("DATABASE_URL", db.url()).arg("demo")));
    assert!(first.contains("API key:"), "{first}");
    assert!(
        first.contains("portal login: demo@epai.local / "),
        "{first}"
    );
    let admin = db.admin().await;
    let row = admin
        .query_one(
            "SELECT count(*), count(DISTINCT event_type),
                    extract(day FROM max(occurred_at) - min(occurred_at))::int
             FROM ingestion_events",
            &[],
        )
        .await
        .unwrap();
    let (events, types, span_days): (i64, i64, i32) = (row.get(0), row.get(1), row.get(2));
    assert!(events > 2000, "{events} events");
    assert_eq!(types, 5);
    assert!(span_days >= 21, "{span_days} days");

    let second = stdout(&run(epai().env("DATABASE_URL", db.url()).arg("demo")));
    assert!(second.contains("already loaded"), "{second}");
    assert!(
        !second.contains("portal login"),
        "the password is shown only once"
    );
    let again: i64 = admin
        .query_one("SELECT count(*) FROM ingestion_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, events, "a second demo run adds nothing");
}

#[tokio::test]
async fn model_register_checks_the_onnx_file_and_model_list_shows_every_version() {
    let db = TestDatabase::migrated().await;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../epai-engine/tests/fixtures/churn_score.onnx"
    );
    let register = |name: &str, inputs: &str| {
        run(epai().env("DATABASE_URL", db.url()).args([
            "model",
            "register",
            "--name",
            name,
            "--file",
            fixture,
            "--inputs",
            inputs,
            "--description",
            "Churn probability",
            "--json",
        ]))
    };
    let first = json(&register("churn_score", "recency_days,orders,spend"));
    assert_eq!(first[0]["version"], 1);
    assert_eq!(
        first[0]["inputs"],
        serde_json::json!(["recency_days", "orders", "spend"])
    );
    let second = json(&register("churn_score", "recency_days,orders,spend"));
    assert_eq!(second[0]["version"], 2);

    for (name, inputs, complaint) in [
        (
            "churn_score",
            "recency_days,orders",
            "does not take 2 features",
        ),
        ("lead_scoring", "a,b,c", "built-in model"),
        ("two words", "a,b,c", "--name"),
        ("dupes", "a,a,b", "twice"),
    ] {
        let refused = register(name, inputs);
        assert!(!refused.status.success(), "{name} {inputs}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(complaint), "{name} {inputs}: {stderr}");
    }
    let not_onnx = run(epai().env("DATABASE_URL", db.url()).args([
        "model",
        "register",
        "--name",
        "junk",
        "--file",
        env!("CARGO_MANIFEST_DIR"),
        "--inputs",
        "a",
    ]));
    assert!(!not_onnx.status.success());

    let listed = json(&run(epai()
        .env("DATABASE_URL", db.url())
        .args(["model", "list", "--json"])));
    let names: Vec<(&str, i64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(names, [("churn_score", 2)]);
    let text = stdout(&run(epai()
        .env("DATABASE_URL", db.url())
        .args(["model", "list"])));
    assert!(
        text.contains("churn_score v2  inputs recency_days,orders,spend"),
        "{text}"
    );
}

/// `epai serve` in `dir` on a free port; returns the child and its base URL once it listens.
#[tokio::test]
async fn worker_runs_until_sigterm_and_refuses_to_run_with_no_workers() {
    let db = TestDatabase::migrated().await;
    let data = tempfile::tempdir().unwrap();
    let idle = run(epai()
        .env("DATABASE_URL", db.url())
        .env("EPAI_DATA_DIR", data.path())
        .env("EPAI_WORKERS", "0")
        .env("EPAI_WEBHOOK_WORKERS", "0")
        .arg("worker"));
    assert!(!idle.status.success());
    assert!(stderr_of_failure(&idle).contains("EPAI_WORKERS and EPAI_WEBHOOK_WORKERS are 0"));

    let mut worker = epai()
        .env("DATABASE_URL", db.url())
        .env("EPAI_DATA_DIR", data.path())
        .env("EPAI_WORKERS", "2")
        .env("EPAI_WEBHOOK_WORKERS", "3")
        .arg("worker")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("workers running: 2 insight, 3 webhook"),
        "{line}"
    );
    signal(&worker, Signal::SIGTERM);
    assert!(worker.wait().unwrap().success(), "stops cleanly on SIGTERM");
}

fn spawn_serve(dir: &Path) -> (Child, String) {
    spawn_serve_with(dir, &[])
}

/// `spawn_serve` with extra environment variables.
fn spawn_serve_with(dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = epai()
        .current_dir(dir)
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(url) = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
    else {
        let output = child.wait_with_output().unwrap();
        panic!(
            "serve did not start: {line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    (child, url.to_owned())
}

async fn ready(url: &str) -> u16 {
    reqwest::get(format!("{url}/ready"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

fn postmaster_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(".epai/pgdata/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn serve_runs_on_the_embedded_default_with_commands_alongside() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = spawn_serve(dir.path());
    assert_eq!(ready(&url).await, 200);

    let created = json(&run(epai().current_dir(dir.path()).args([
        "partner",
        "create",
        "--name",
        "Alongside",
        "--email",
        "a@alongside.test",
        "--json",
    ])));
    ApiKey::parse(created["api_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        ready(&url).await,
        200,
        "the command left the server's cluster running"
    );

    let second = run(epai()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("in use by another epai process"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    signal(&server, Signal::SIGTERM);
    let output = server.wait_with_output().unwrap();
    assert!(output.status.success(), "graceful exit: {}", output.status);
    assert_eq!(postmaster_pid(dir.path()), None, "PostgreSQL was stopped");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        !log.lines()
            .any(|line| line.contains("WARN") && line.to_lowercase().contains("connection")),
        "connections were cut off by the stopping cluster instead of closed first:\n{log}"
    );
}

#[tokio::test]
async fn serve_recovers_after_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = spawn_serve(dir.path());
    assert_eq!(ready(&url).await, 200);
    let created = json(&run(epai().current_dir(dir.path()).args([
        "partner",
        "create",
        "--name",
        "Survivor",
        "--email",
        "s@survivor.test",
        "--json",
    ])));

    // Killed outright: PostgreSQL is left running without its owner, and is adopted.
    signal(&server, Signal::SIGKILL);
    server.wait().unwrap();
    assert!(postmaster_pid(dir.path()).is_some());
    let (mut server, url) = spawn_serve(dir.path());
    assert_eq!(ready(&url).await, 200);

    // Both killed: a stale postmaster.pid is left behind, and the next start cleans up after it.
    let postmaster = postmaster_pid(dir.path()).unwrap();
    signal(&server, Signal::SIGKILL);
    server.wait().unwrap();
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).unwrap();
    let (mut server, url) = spawn_serve(dir.path());
    assert_eq!(ready(&url).await, 200);

    let rotated = json(&run(epai().current_dir(dir.path()).args([
        "key",
        "rotate",
        "--partner",
        "s@survivor.test",
        "--json",
    ])));
    assert_eq!(
        rotated["partner_id"], created["partner_id"],
        "data survived"
    );

    signal(&server, Signal::SIGTERM);
    assert!(server.wait().unwrap().success());
}

#[tokio::test]
async fn portal_sessions_survive_a_restart_because_the_generated_secret_is_kept() {
    let db = TestDatabase::migrated().await;
    let database_url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", database_url.as_str())];
    let client = reqwest::Client::new();

    let (mut server, url) = spawn_serve_with(dir.path(), &env);
    let session: serde_json::Value = client
        .post(format!("{url}/auth/v1/signup"))
        .json(&serde_json::json!({ "email": "ops@acme.test", "password": "correct horse battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = session["access_token"].as_str().unwrap().to_owned();
    signal(&server, Signal::SIGTERM);
    assert!(server.wait().unwrap().success());

    let secret_file = dir.path().join(".epai/jwt_secret");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(&secret_file).unwrap();

    let user_status = async |url: &str| {
        client
            .get(format!("{url}/auth/v1/user"))
            .bearer_auth(&access_token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let (server, url) = spawn_serve_with(dir.path(), &env);
    assert_eq!(
        user_status(&url).await,
        200,
        "the restarted server verifies the token"
    );
    signal(&server, Signal::SIGTERM);
    let output = server.wait_with_output().unwrap();
    assert!(output.status.success());
    for printed in [&output.stdout, &output.stderr] {
        assert!(!String::from_utf8_lossy(printed).contains(&secret));
    }
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);

    let configured = [
        ("DATABASE_URL", database_url.as_str()),
        (
            "EPAI_JWT_SECRET",
            "a configured secret of at least 32 bytes",
        ),
    ];
    let (mut server, url) = spawn_serve_with(dir.path(), &configured);
    assert_eq!(
        user_status(&url).await,
        401,
        "a configured secret replaces the stored one"
    );
    signal(&server, Signal::SIGTERM);
    assert!(server.wait().unwrap().success());

    let too_short = run(epai()
        .current_dir(dir.path())
        .env("DATABASE_URL", &database_url)
        .env("EPAI_JWT_SECRET", "short")
        .args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!too_short.status.success());
    let stderr = String::from_utf8_lossy(&too_short.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}

#[tokio::test]
async fn sigterm_under_load_loses_no_acknowledged_event() {
    let db = TestDatabase::migrated().await;
    let created = json(&run(epai().env("DATABASE_URL", db.url()).args([
        "partner",
        "create",
        "--name",
        "Busy",
        "--email",
        "busy@load.test",
        "--json",
    ])));
    let key = created["api_key"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let url_env = db.url();
    let (mut server, url) = spawn_serve_with(
        dir.path(),
        &[
            ("DATABASE_URL", url_env.as_str()),
            ("EPAI_RATE_LIMIT_PER_KEY", "0"),
        ],
    );
    let client = reqwest::Client::new();
    let send = |i: usize| {
        client
            .post(format!("{url}/v1/events"))
            .header("apikey", &key)
            .json(&serde_json::json!({"event_type": "tick", "data": {"i": i}}))
            .send()
    };
    let mut in_flight: futures_util::stream::FuturesUnordered<_> = (0..400).map(send).collect();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut signalled = false;
    while let Some(outcome) = futures_util::StreamExt::next(&mut in_flight).await {
        match outcome {
            Ok(response) if response.status() == 202 => {
                let body: serde_json::Value = response.json().await.unwrap();
                acknowledged.push(body["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
            }
            // Once shutdown starts, new connections are refused: not acknowledged, not stored.
            _ => refused += 1,
        }
        if acknowledged.len() == 50 && !signalled {
            signal(&server, Signal::SIGTERM);
            signalled = true;
        }
    }
    assert!(server.wait().unwrap().success(), "graceful exit");
    assert!(
        acknowledged.len() >= 50,
        "{} acknowledged",
        acknowledged.len()
    );
    let stored: i64 = db
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE id = ANY($1)",
            &[&acknowledged],
        )
        .await
        .unwrap()
        .get(0);
    println!(
        "sent 400, acknowledged {}, refused {refused}, stored {stored}",
        acknowledged.len()
    );
    assert_eq!(
        stored as usize,
        acknowledged.len(),
        "every acknowledged event is stored ({refused} requests were refused)"
    );
    // The request log was flushed too: every event the server stored was acknowledged to
    // someone, and each acknowledgement is in the log.
    let admin = db.admin().await;
    let all_stored: i64 = admin
        .query_one("SELECT count(*) FROM ingestion_events", &[])
        .await
        .unwrap()
        .get(0);
    let logged: i64 = admin
        .query_one(
            "SELECT count(*) FROM logs WHERE endpoint = '/v1/events' AND status = 202",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    println!("stored {all_stored} events in all, logged {logged} acknowledgements");
    assert_eq!(
        logged, all_stored,
        "every acknowledgement is in the request log"
    );
}

fn partition_names(rows: &[tokio_postgres::Row]) -> Vec<String> {
    rows.iter().map(|r| r.get(0)).collect()
}

async fn log_partitions(db: &TestDatabase) -> Vec<String> {
    partition_names(
        &db.admin()
            .await
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'logs'::regclass ORDER BY 1",
                &[],
            )
            .await
            .unwrap(),
    )
}

fn month_ahead(table: &str, months: u32) -> String {
    let at = chrono::Utc::now()
        .checked_add_months(chrono::Months::new(months))
        .unwrap();
    format!("{table}_p{}", at.format("%Y_%m"))
}

#[tokio::test]
async fn maintenance_plans_with_dry_run_then_creates_and_reports_partitions() {
    let db = TestDatabase::migrated().await;
    let maintenance = |args: &[&str]| {
        let mut command = epai();
        command
            .env("DATABASE_URL", db.url())
            .env("EPAI_PARTITIONS_AHEAD", "5")
            .arg("maintenance")
            .args(args);
        run(&mut command)
    };
    let fifth = month_ahead("logs", 5);
    let plan = stdout(&maintenance(&["--dry-run"]));
    assert!(
        plan.contains("(dry run): request logs kept 90 days, events kept forever, 5 months ahead"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("logs: would create {fifth} [")),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "ingestion_events: would create {}",
            month_ahead("ingestion_events", 4)
        )),
        "{plan}"
    );
    assert!(
        !log_partitions(&db).await.contains(&fifth),
        "a dry run changes nothing"
    );

    let done = stdout(&maintenance(&[]));
    assert!(done.contains(&format!("logs: created {fifth} [")), "{done}");
    assert!(log_partitions(&db).await.contains(&fifth));

    let again = json(&maintenance(&["--json"]));
    assert_eq!(again, serde_json::json!([]), "nothing left to do");
    let text = stdout(&maintenance(&[]));
    assert!(text.contains("nothing to do"), "{text}");

    let refused = run(epai()
        .env("DATABASE_URL", db.url())
        .env("EPAI_PARTITIONS_AHEAD", "500")
        .arg("maintenance"));
    assert!(stderr_of_failure(&refused).contains("500"));
}

#[tokio::test]
async fn serve_keeps_the_partitions_of_the_coming_months_ready() {
    let db = TestDatabase::migrated().await;
    let dir = tempfile::tempdir().unwrap();
    let url_env = db.url();
    let seventh = month_ahead("logs", 7);
    assert!(!log_partitions(&db).await.contains(&seventh));
    let (mut server, _url) = spawn_serve_with(
        dir.path(),
        &[
            ("DATABASE_URL", url_env.as_str()),
            ("EPAI_PARTITIONS_AHEAD", "7"),
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !log_partitions(&db).await.contains(&seventh) {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not create {seventh}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    signal(&server, Signal::SIGTERM);
    assert!(server.wait().unwrap().success());
}
