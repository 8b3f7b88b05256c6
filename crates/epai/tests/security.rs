//! Secrets never leak: the real `epai serve`, with the default log filter and with `debug`,
//! goes through sign-up, logins (good, wrong and forged), refresh-token rotation and reuse, API
//! key rotation, embed tokens, webhook secrets, portal form logins and logout; then every secret
//! it handed out or was handed is looked for in its stdout and stderr, in every row of every
//! table (`logs` and `security_events` included) and in every error body it answered.
//!
//! Also: rotating the session signing secret (`epai jwt rotate`) signs nobody out.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use epai_store::testing::TestDatabase;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

mod support;

fn epai(data_dir: &Path) -> Command {
    let mut command = support::clean_epai();
    command.env("EPAI_DATA_DIR", data_dir);
    command
}

/// A running `epai serve` whose output is collected until it exits.
struct Server {
    child: Child,
    url: String,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl Server {
    fn start(data_dir: &Path, database_url: &str, log: Option<&str>) -> Self {
        let mut command = epai(data_dir);
        command
            .env("DATABASE_URL", database_url)
            .env("EPAI_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("EPAI_WEBHOOK_HTTP_HOSTS", "127.0.0.1")
            .env("EPAI_WEBHOOK_WORKERS", "0")
            .env("EPAI_RATE_LIMIT_PER_IP", "0")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(filter) = log {
            command.env("EPAI_LOG", filter);
        }
        let mut child = command.spawn().unwrap();
        let (first_line, url_line) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut all = String::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let _ = first_line.send(line.clone());
            all.push_str(&line);
            reader.read_to_string(&mut all).unwrap();
            all
        });
        // Debug logs are plentiful: drain stderr all along so the server never blocks on it.
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            err.read_to_end(&mut all).unwrap();
            String::from_utf8_lossy(&all).into_owned()
        });
        let line = url_line.recv().unwrap();
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("serve did not start: {line}"))
            .to_owned();
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// SIGTERM, then everything the process printed.
    fn stop(mut self) -> String {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        assert!(self.child.wait().unwrap().success(), "clean exit");
        let stdout = self.stdout.join().unwrap();
        let stderr = self.stderr.join().unwrap();
        format!("{stdout}\n{stderr}")
    }
}

/// Every secret the session saw, by name, and every error body it got.
#[derive(Default)]
struct Seen {
    secrets: Vec<(String, String)>,
    error_bodies: Vec<String>,
}

impl Seen {
    fn secret(&mut self, name: &str, value: &str) {
        assert!(value.len() >= 8, "{name} is too short to look for");
        self.secrets.push((name.to_owned(), value.to_owned()));
        // A JWT's signature alone is as good as the token for finding it.
        let parts: Vec<&str> = value.split('.').collect();
        if parts.len() == 3 && parts[0].starts_with("eyJ") {
            self.secrets
                .push((format!("{name} signature"), parts[2].to_owned()));
        }
    }

    async fn answer(&mut self, response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(status < 500, "{status}: {text}");
        if status >= 400 {
            self.error_bodies.push(text.clone());
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))?
                .split(';')
                .next()
                .map(str::to_owned)
        })
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Logs in through the portal's form (CSRF token and nonce cookie included).
async fn portal_login(
    client: &reqwest::Client,
    url: &str,
    seen: &mut Seen,
    email: &str,
    password: &str,
) -> u16 {
    let page = client
        .get(format!("{url}/portal/login"))
        .send()
        .await
        .unwrap();
    let nonce = cookie_value(&page, "epai_csrf").expect("a CSRF nonce cookie");
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    seen.secret("portal CSRF token", &csrf);
    let body = format!(
        "email={}&password={}&csrf={}",
        form_encode(email),
        form_encode(password),
        form_encode(&csrf)
    );
    let response = client
        .post(format!("{url}/portal/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("epai_csrf={nonce}"))
        .body(body)
        .send()
        .await
        .unwrap();
    if let Some(session) = cookie_value(&response, "epai_session") {
        seen.secret("portal session cookie", &session);
    }
    response.status().as_u16()
}

/// One account's whole life with the server, recording every secret on the way.
async fn exercise(url: &str, round: &str, seen: &mut Seen) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let email = format!("ops-{round}@acme.test");
    let password = format!("correct horse battery {round} staple");
    seen.secret("password", &password);

    let (status, session) = seen
        .answer(
            client
                .post(format!("{url}/auth/v1/signup"))
                .json(&json!({"email": email, "password": password, "data": {"name": "Acme"}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let access = session["access_token"].as_str().unwrap().to_owned();
    seen.secret("sign-up access token", &access);
    seen.secret(
        "sign-up refresh token",
        session["refresh_token"].as_str().unwrap(),
    );

    let login = |password: String| {
        client
            .post(format!("{url}/auth/v1/token?grant_type=password"))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let (status, logged_in) = seen.answer(login(password.clone()).await.unwrap()).await;
    assert_eq!(status, 200);
    seen.secret(
        "login access token",
        logged_in["access_token"].as_str().unwrap(),
    );
    let refresh = logged_in["refresh_token"].as_str().unwrap().to_owned();
    seen.secret("login refresh token", &refresh);

    let wrong = format!("wrong guess {round} of a password");
    seen.secret("wrong password", &wrong);
    let (status, _) = seen.answer(login(wrong).await.unwrap()).await;
    assert_eq!(status, 400);
    let truncated = format!(r#"{{"email": "{email}", "password": "truncated {round} secret"#);
    seen.secret(
        "password in a malformed body",
        &format!("truncated {round} secret"),
    );
    let (status, _) = seen
        .answer(
            client
                .post(format!("{url}/auth/v1/token?grant_type=password"))
                .header("content-type", "application/json")
                .body(truncated)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 400);

    let refresh_with = |token: String| {
        client
            .post(format!("{url}/auth/v1/token?grant_type=refresh_token"))
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let (status, refreshed) = seen
        .answer(refresh_with(refresh.clone()).await.unwrap())
        .await;
    assert_eq!(status, 200);
    seen.secret(
        "refreshed access token",
        refreshed["access_token"].as_str().unwrap(),
    );
    seen.secret(
        "refreshed refresh token",
        refreshed["refresh_token"].as_str().unwrap(),
    );
    let (status, _) = seen.answer(refresh_with(refresh).await.unwrap()).await;
    assert_eq!(status, 400, "a reused refresh token is refused");

    // Forged credentials.
    let forged_key = format!("epai_{}", URL_SAFE_NO_PAD.encode([7u8; 24]));
    seen.secret("forged API key", &forged_key);
    let (status, _) = seen
        .answer(
            client
                .get(format!("{url}/v1/events"))
                .header("apikey", &forged_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 401);
    let forged_jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": uuid::Uuid::new_v4(), "role": "authenticated", "aud": "authenticated", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"an attacker's guess at the secret"),
    )
    .unwrap();
    seen.secret("forged session token", &forged_jwt);
    let (status, _) = seen
        .answer(
            client
                .get(format!("{url}/v1/api-key"))
                .bearer_auth(&forged_jwt)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 401);

    // Key rotation, then the key at work.
    let mut key = String::new();
    for rotation in ["first API key", "rotated API key"] {
        let (status, issued) = seen
            .answer(
                client
                    .post(format!("{url}/v1/api-key"))
                    .bearer_auth(&access)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, 201);
        key = issued["api_key"].as_str().unwrap().to_owned();
        seen.secret(rotation, &key);
    }
    let (status, _) = seen
        .answer(
            client
                .post(format!("{url}/v1/events"))
                .header("apikey", &key)
                .json(&json!({"event_type": "page_view", "data": {"n": 1}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 202);
    // A refused body is logged, never stored as an event: a key pasted into it must be masked.
    let (status, _) = seen
        .answer(
            client
                .post(format!("{url}/v1/events"))
                .header("apikey", &key)
                .json(&json!({"event_type": "9 invalid", "data": {"note": format!("sent with {key}")}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 400);

    // Embed tokens, in a header and in the stream's query string.
    let (status, embed) = seen
        .answer(
            client
                .post(format!("{url}/v1/embed-tokens"))
                .header("apikey", &key)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 201);
    let embed = embed["token"].as_str().unwrap().to_owned();
    seen.secret("embed token", &embed);
    let (status, _) = seen
        .answer(
            client
                .get(format!("{url}/v1/insights"))
                .bearer_auth(&embed)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let stream = client
        .get(format!("{url}/v1/insights/stream?access_token={embed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);

    // Webhook signing secrets: created, rotated.
    let (status, created) = seen
        .answer(
            client
                .post(format!("{url}/v1/webhooks"))
                .header("apikey", &key)
                .json(&json!({"url": "http://127.0.0.1:9/hook"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    seen.secret("webhook secret", created["secret"].as_str().unwrap());
    let id = created["webhook"]["id"].as_str().unwrap();
    let (status, rotated) = seen
        .answer(
            client
                .post(format!("{url}/v1/webhooks/{id}/rotate-secret"))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    seen.secret(
        "rotated webhook secret",
        rotated["secret"].as_str().unwrap(),
    );

    // The portal's form login, wrong and right.
    let wrong_form = format!("form guess {round} at the password");
    seen.secret("wrong password in a form", &wrong_form);
    assert_eq!(
        portal_login(&client, url, seen, &email, &wrong_form).await,
        400
    );
    assert_eq!(
        portal_login(&client, url, seen, &email, &password).await,
        303
    );

    let (status, _) = seen
        .answer(
            client
                .post(format!("{url}/auth/v1/logout"))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 204);
}

/// Every row of every table of the application, as text.
async fn every_row(db: &TestDatabase) -> String {
    let admin = db.admin().await;
    let tables = admin
        .query(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
             WHERE table_schema IN ('public', 'auth') AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap();
    let mut all = String::new();
    for table in tables {
        let name: String = table.get(0);
        for row in admin
            .query(&format!("SELECT t::text FROM {name} t"), &[])
            .await
            .unwrap()
        {
            all.push_str(&name);
            all.push(' ');
            all.push_str(row.get::<_, &str>(0));
            all.push('\n');
        }
    }
    all
}

#[tokio::test]
async fn no_secret_reaches_the_output_the_database_or_an_error_body() {
    let db = TestDatabase::migrated().await;
    let data = tempfile::tempdir().unwrap();
    let mut seen = Seen::default();
    let mut output = String::new();
    for (round, log) in [("default", None), ("debug", Some("debug"))] {
        let server = Server::start(data.path(), &db.url(), log);
        exercise(&server.url.clone(), round, &mut seen).await;
        output.push_str(&server.stop());
    }
    assert!(
        output.contains("DEBUG"),
        "the second run logged at debug level"
    );

    let jwt_secret = std::fs::read_to_string(data.path().join("jwt_secret")).unwrap();
    seen.secret("JWT secret", jwt_secret.trim());
    let webhook_key = std::fs::read_to_string(data.path().join("webhook_key")).unwrap();
    seen.secret("webhook sealing key", webhook_key.trim());
    // Password hashes are as good as passwords to an offline guesser.
    for row in db
        .admin()
        .await
        .query("SELECT encrypted_password FROM auth.users", &[])
        .await
        .unwrap()
    {
        seen.secret("password hash", row.get::<_, &str>(0));
    }

    let rows = every_row(&db).await;
    assert!(rows.contains("security_events") && rows.contains("login_failed"));
    assert!(rows.contains("refresh_token_reused") && rows.contains("invalid_api_key"));
    let places = [
        ("the server's stdout and stderr", output.as_str()),
        ("the database", rows.as_str()),
        ("an error body", &seen.error_bodies.join("\n")),
    ];
    let mut leaks = Vec::new();
    for (name, secret) in &seen.secrets {
        for (place, text) in places {
            let is_own_hash = name == "password hash" && place == "the database";
            if text.contains(secret.as_str()) && !is_own_hash {
                let at = text.find(secret.as_str()).unwrap();
                let context: String = text[at.saturating_sub(120)..].chars().take(240).collect();
                leaks.push(format!("{name} in {place}: …{context}…"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    println!(
        "checked {} secrets against {} bytes of output, {} bytes of rows and {} error bodies",
        seen.secrets.len(),
        output.len(),
        rows.len(),
        seen.error_bodies.len()
    );
}

/// A session token through `/auth/v1/user`, and the key id in its header.
async fn user_status(url: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{url}/auth/v1/user"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.unwrap();
    if status == 401 {
        assert_eq!(content_type.unwrap(), "application/problem+json");
    }
    (status, body)
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn rotating_the_jwt_secret_signs_nobody_out_and_unknown_key_ids_are_refused() {
    let db = TestDatabase::migrated().await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &db.url(), Some("warn"));
    let signup: Value = reqwest::Client::new()
        .post(format!("{}/auth/v1/signup", server.url))
        .json(&json!({"email": "ops@acme.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old_token = signup["access_token"].as_str().unwrap().to_owned();
    server.stop();

    let rotated = epai(data.path())
        .args(["jwt", "rotate", "--json"])
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rotation: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotation["retired_kid"], kid(&old_token));
    assert_ne!(rotation["kid"], rotation["retired_kid"]);

    let server = Server::start(data.path(), &db.url(), Some("warn"));
    let (status, user) = user_status(&server.url, &old_token).await;
    assert_eq!(
        status, 200,
        "a token of the retired secret still verifies: {user}"
    );
    let login: Value = reqwest::Client::new()
        .post(format!("{}/auth/v1/token?grant_type=password", server.url))
        .json(&json!({"email": "ops@acme.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_token = login["access_token"].as_str().unwrap();
    assert_eq!(
        kid(new_token),
        rotation["kid"],
        "new tokens carry the new key id"
    );
    assert_eq!(user_status(&server.url, new_token).await.0, 200);

    // A valid signature under a key id the server does not know is still refused.
    let secret = std::fs::read_to_string(data.path().join("jwt_secret")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("0badc0de".into());
    let claims = jsonwebtoken::decode::<Value>(
        new_token,
        &jsonwebtoken::DecodingKey::from_secret(secret.trim().as_bytes()),
        &{
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.set_audience(&["authenticated"]);
            validation
        },
    )
    .unwrap()
    .claims;
    let unknown_kid = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap();
    let (status, problem) = user_status(&server.url, &unknown_kid).await;
    assert_eq!(status, 401);
    assert_eq!(problem["code"], "auth/invalid-session");
    let output = server.stop();
    assert!(
        !output.contains(secret.trim()),
        "the new secret is never printed"
    );

    // Signing everyone out forgets the retired secrets.
    let forced = epai(data.path())
        .args(["jwt", "rotate", "--sign-everyone-out"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    let server = Server::start(data.path(), &db.url(), Some("warn"));
    assert_eq!(user_status(&server.url, &old_token).await.0, 401);
    assert_eq!(user_status(&server.url, new_token).await.0, 401);
    server.stop();

    let configured = epai(data.path())
        .env(
            "EPAI_JWT_SECRET",
            "a configured secret of at least 32 bytes",
        )
        .args(["jwt", "rotate"])
        .output()
        .unwrap();
    assert!(!configured.status.success());
    assert!(String::from_utf8_lossy(&configured.stderr).contains("EPAI_JWT_PREVIOUS_SECRETS"));
}

#[tokio::test]
async fn previous_secrets_from_the_environment_verify_but_never_sign() {
    let db = TestDatabase::migrated().await;
    let data = tempfile::tempdir().unwrap();
    const OLD: &str = "the old configured secret of 32+ bytes";
    const NEW: &str = "the new configured secret of 32+ bytes";
    let start = |current: &str, previous: Option<&str>| {
        let mut command = epai(data.path());
        command
            .env("DATABASE_URL", db.url())
            .env("EPAI_JWT_SECRET", current)
            .env("EPAI_LOG", "warn")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(previous) = previous {
            command.env("EPAI_JWT_PREVIOUS_SECRETS", previous);
        }
        command
    };
    let spawn = |mut command: Command| {
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_owned();
        (child, url)
    };
    let (mut old, url) = spawn(start(OLD, None));
    let signup: Value = reqwest::Client::new()
        .post(format!("{url}/auth/v1/signup"))
        .json(&json!({"email": "ops@acme.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["access_token"].as_str().unwrap().to_owned();
    kill(Pid::from_raw(old.id() as i32), Signal::SIGTERM).unwrap();
    old.wait().unwrap();

    let (mut new, url) = spawn(start(NEW, Some(OLD)));
    assert_eq!(user_status(&url, &token).await.0, 200);
    let login: Value = reqwest::Client::new()
        .post(format!("{url}/auth/v1/token?grant_type=password"))
        .json(&json!({"email": "ops@acme.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        kid(login["access_token"].as_str().unwrap()),
        epai_server::JwtKeys::kid_of(NEW.as_bytes())
    );
    kill(Pid::from_raw(new.id() as i32), Signal::SIGTERM).unwrap();
    new.wait().unwrap();

    let (mut without, url) = spawn(start(NEW, None));
    assert_eq!(user_status(&url, &token).await.0, 401);
    kill(Pid::from_raw(without.id() as i32), Signal::SIGTERM).unwrap();
    without.wait().unwrap();
}
