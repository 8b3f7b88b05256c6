use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use epai_domain::{AuthUserId, RefreshToken, SessionId};
use epai_server::{JwtKeys, SessionClaims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{TEST_JWT_SECRET, TestApp, problem};

const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    async fn signup(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_anonymous(
            "/auth/v1/signup",
            &json!({ "email": email, "password": password, "data": { "name": "Acme Events" } }),
        )
        .await
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/v1/token?grant_type=password"))
            .header("user-agent", "accounts-test/1.0")
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    }

    async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post_anonymous(
            "/auth/v1/token?grant_type=refresh_token",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// Signs up `email` and returns the session it answers with.
    async fn signed_up(&self, email: &str) -> Value {
        let response = self.signup(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> T {
        self.db
            .admin()
            .await
            .query_one(sql, params)
            .await
            .unwrap()
            .get(0)
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

#[tokio::test]
async fn signup_creates_the_account_and_its_partner_with_an_argon2id_hash() {
    let app = TestApp::spawn().await;
    let session = app.signed_up("Ops@Acme.test").await;
    let user_id: uuid::Uuid = text(&session["user"]["id"]).parse().unwrap();
    assert_eq!(session["user"]["email"], "ops@acme.test");
    assert_eq!(session["token_type"], "bearer");

    let hash: String = app
        .scalar(
            "SELECT encrypted_password FROM auth.users WHERE id = $1",
            &[&user_id],
        )
        .await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    let partner_name: String = app
        .scalar("SELECT name FROM partners WHERE user_id = $1", &[&user_id])
        .await;
    assert_eq!(partner_name, "Acme Events");

    let unnamed = app
        .post_anonymous(
            "/auth/v1/signup",
            &json!({ "email": "solo@shop.test", "password": PASSWORD }),
        )
        .await;
    assert_eq!(unnamed.status(), 200);
    let named_after_email: String = app
        .scalar(
            "SELECT name FROM partners WHERE email = 'solo@shop.test'",
            &[],
        )
        .await;
    assert_eq!(named_after_email, "solo@shop.test");
}

#[tokio::test]
async fn login_returns_a_session_token_that_opens_the_user_endpoint() {
    let app = TestApp::spawn().await;
    let signed_up = app.signed_up("ops@acme.test").await;
    let response = app.login("OPS@acme.test", PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    assert_eq!(session["user"]["id"], signed_up["user"]["id"]);
    assert_eq!(session["user"]["role"], "authenticated");
    assert!(session["user"]["created_at"].is_string());
    assert!(session["refresh_token"].is_string());

    let access_token = text(&session["access_token"]);
    let claims = app.jwt.verify(access_token).unwrap();
    assert_eq!(claims.sub.to_string(), text(&session["user"]["id"]));
    assert_eq!(claims.role, "authenticated");
    assert_eq!(claims.aud, "authenticated");
    assert_eq!(claims.email, "ops@acme.test");
    assert!(claims.exp > Utc::now().timestamp());
    assert_eq!(session["expires_at"], claims.exp);

    let user = app.get_with_bearer("/auth/v1/user", access_token).await;
    assert_eq!(user.status(), 200);
    let user: Value = user.json().await.unwrap();
    assert_eq!(user["id"], session["user"]["id"]);
    assert_eq!(user["email"], "ops@acme.test");
    assert!(user["last_sign_in_at"].is_string());

    let by_cookie = app
        .client
        .get(app.url("/auth/v1/user"))
        .header("cookie", format!("theme=dark; epai_session={access_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_refused_alike_and_recorded() {
    let app = TestApp::spawn().await;
    let signed_up = app.signed_up("ops@acme.test").await;
    let wrong_password = "not the right password";
    let other_password = "guessing at random";

    let wrong = problem(
        app.login("ops@acme.test", wrong_password).await,
        400,
        "auth/invalid-credentials",
    )
    .await;
    let unknown = problem(
        app.login("nobody@acme.test", other_password).await,
        400,
        "auth/invalid-credentials",
    )
    .await;
    assert_eq!(wrong, unknown, "the two failures are indistinguishable");

    let events = app
        .db
        .admin()
        .await
        .query(
            "SELECT user_id, ip_address, user_agent, details::text, partner_id IS NOT NULL
             FROM security_events WHERE event_type = 'login_failed' ORDER BY created_at",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let known_user: Option<uuid::Uuid> = events[0].get(0);
    assert_eq!(
        known_user.map(|id| id.to_string()).as_deref(),
        Some(text(&signed_up["user"]["id"]))
    );
    assert!(
        events[0].get::<_, bool>(4),
        "the partner can see its own event"
    );
    assert_eq!(events[1].get::<_, Option<uuid::Uuid>>(0), None);
    for event in &events {
        assert_eq!(
            event.get::<_, Option<String>>(1).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            event.get::<_, Option<String>>(2).as_deref(),
            Some("accounts-test/1.0")
        );
        let details: String = event.get(3);
        assert!(!details.contains(wrong_password), "{details}");
        assert!(!details.contains(other_password), "{details}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_spent_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let first = app.signed_up("ops@acme.test").await;
    let first_refresh = text(&first["refresh_token"]);

    let response = app.refresh(first_refresh).await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    let second_refresh = text(&second["refresh_token"]);
    assert_ne!(second_refresh, first_refresh);
    let first_claims = app.jwt.verify(text(&first["access_token"])).unwrap();
    let second_claims = app.jwt.verify(text(&second["access_token"])).unwrap();
    assert_eq!(second_claims.session_id, first_claims.session_id);
    assert_eq!(second["user"]["id"], first["user"]["id"]);

    problem(
        app.refresh(first_refresh).await,
        400,
        "auth/invalid-refresh-token",
    )
    .await;
    problem(
        app.refresh(second_refresh).await,
        400,
        "auth/invalid-refresh-token",
    )
    .await;

    let reuse_events: i64 = app
        .scalar(
            "SELECT count(*) FROM security_events
             WHERE event_type = 'refresh_token_reused' AND user_id = $1",
            &[&first_claims.sub.as_uuid()],
        )
        .await;
    assert_eq!(reuse_events, 1);
}

#[tokio::test]
async fn logout_ends_the_session_so_its_refresh_token_stops_working() {
    let app = TestApp::spawn().await;
    let session = app.signed_up("ops@acme.test").await;
    let other_device = app.login("ops@acme.test", PASSWORD).await;
    let other_device: Value = other_device.json().await.unwrap();

    let logout = app
        .client
        .post(app.url("/auth/v1/logout"))
        .bearer_auth(text(&session["access_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    problem(
        app.refresh(text(&session["refresh_token"])).await,
        400,
        "auth/invalid-refresh-token",
    )
    .await;
    assert_eq!(
        app.refresh(text(&other_device["refresh_token"]))
            .await
            .status(),
        200,
        "logout ends only the session it was called with"
    );

    let anonymous = app
        .client
        .post(app.url("/auth/v1/logout"))
        .send()
        .await
        .unwrap();
    problem(anonymous, 401, "auth/missing-session").await;
}

fn sign(header: &Header, claims: &SessionClaims, secret: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[tokio::test]
async fn session_tokens_that_do_not_verify_are_refused_with_401() {
    let app = TestApp::spawn().await;
    let session = app.signed_up("ops@acme.test").await;
    let valid = app.jwt.verify(text(&session["access_token"])).unwrap();

    problem(app.get("/auth/v1/user").await, 401, "auth/missing-session").await;

    let other_keys = JwtKeys::from_secret(b"a different secret, also 32 bytes+").unwrap();
    let forged = other_keys.issue(&valid).unwrap();
    let mut same_kid = Header::new(Algorithm::HS256);
    same_kid.kid = Some(app.jwt.kid().to_owned());
    let forged_with_our_kid = sign(&same_kid, &valid, b"a different secret, also 32 bytes+");

    let two_hours_ago = Utc::now() - chrono::Duration::hours(2);
    let expired = app
        .jwt
        .issue(&SessionClaims::new(
            valid.sub,
            valid.email.clone(),
            valid.session_id,
            two_hours_ago,
            std::time::Duration::from_secs(3600),
        ))
        .unwrap();

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid).unwrap());
    let alg_none = format!("{none_header}.{payload}.");
    let hs512 = sign(&Header::new(Algorithm::HS512), &valid, TEST_JWT_SECRET);
    let mut for_service_role = valid.clone();
    for_service_role.role = "service_role".into();
    let service_role = app.jwt.issue(&for_service_role).unwrap();
    let unknown_user = app
        .jwt
        .issue(&SessionClaims::new(
            AuthUserId::new(uuid::Uuid::new_v4()),
            "ghost@acme.test",
            SessionId::new(uuid::Uuid::new_v4()),
            Utc::now(),
            std::time::Duration::from_secs(3600),
        ))
        .unwrap();

    for (what, token) in [
        ("forged signature", forged.as_str()),
        ("forged with our kid", &forged_with_our_kid),
        ("expired", &expired),
        ("alg none", &alg_none),
        ("HS512", &hs512),
        ("service_role claims", &service_role),
        ("garbage", "not-a-jwt"),
        ("three garbage parts", "a.b.c"),
        ("API key", "epai_AbCdEfGhIjKlMnOpQrStUvWxYz012-_9"),
        ("account that does not exist", &unknown_user),
    ] {
        let response = app.get_with_bearer("/auth/v1/user", token).await;
        assert_eq!(response.status(), 401, "{what}");
        let body = problem(response, 401, "auth/invalid-session").await;
        assert!(!body.to_string().contains(token), "{what} echoed: {body}");
    }

    let basic = app
        .client
        .get(app.url("/auth/v1/user"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    problem(basic, 401, "auth/invalid-session").await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_problem_json_that_never_echoes_the_password() {
    let app = TestApp::spawn().await;
    app.signed_up("ops@acme.test").await;
    let secret = "s3cret-never-echoed";

    let raw = |path: &'static str, body: &'static str| {
        app.client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body) in [
        ("/auth/v1/signup", "{not json"),
        ("/auth/v1/signup", ""),
        ("/auth/v1/signup", "[]"),
        ("/auth/v1/signup", r#"{"email": "a@b.test"}"#),
        (
            "/auth/v1/signup",
            r#"{"email": 5, "password": "s3cret-never-echoed"}"#,
        ),
        (
            "/auth/v1/signup",
            r#"{"email": "a@b.test", "password": ["s3cret-never-echoed"]}"#,
        ),
        ("/auth/v1/token?grant_type=password", "{\"email\": "),
        (
            "/auth/v1/token?grant_type=password",
            r#"{"email": "ops@acme.test", "password": 12345678}"#,
        ),
        (
            "/auth/v1/token?grant_type=password",
            r#"{"password": "s3cret-never-echoed"}"#,
        ),
        ("/auth/v1/token?grant_type=refresh_token", r#"{}"#),
        (
            "/auth/v1/token?grant_type=refresh_token",
            r#"{"refresh_token": "s3cret-never-echoed"}"#,
        ),
    ] {
        let response = raw(path, body).await.unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{path} {body}: {status}");
        let code = if body.contains("refresh_token\": \"") {
            "auth/invalid-refresh-token"
        } else {
            "validation/invalid-request"
        };
        let problem = problem(response, status, code).await;
        assert!(!problem.to_string().contains(secret), "{body}: {problem}");
    }

    for (what, body) in [
        (
            "short password",
            json!({ "email": "new@acme.test", "password": "short" }),
        ),
        (
            "NUL in password",
            json!({ "email": "new@acme.test", "password": "long enough\u{0}" }),
        ),
        (
            "long password",
            json!({ "email": "new@acme.test", "password": "x".repeat(257) }),
        ),
        (
            "bad email",
            json!({ "email": "not-an-email", "password": PASSWORD }),
        ),
        (
            "empty name",
            json!({ "email": "new@acme.test", "password": PASSWORD, "data": { "name": " " } }),
        ),
    ] {
        let response = app.post_anonymous("/auth/v1/signup", &body).await;
        assert_eq!(response.status(), 400, "{what}");
        problem(response, 400, "validation/invalid-request").await;
    }
    let users: i64 = app.scalar("SELECT count(*) FROM auth.users", &[]).await;
    assert_eq!(users, 1, "no invalid sign-up created an account");

    let nul_login = app.login("ops@acme.test", "correct horse\u{0}").await;
    problem(nul_login, 400, "auth/invalid-credentials").await;

    let not_json = app
        .client
        .post(app.url("/auth/v1/signup"))
        .body(format!("email=a@b.test&password={secret}"))
        .send()
        .await
        .unwrap();
    problem(not_json, 415, "validation/unsupported-media-type").await;

    for path in ["/auth/v1/token", "/auth/v1/token?grant_type=magic_link"] {
        let response = app
            .post_anonymous(
                path,
                &json!({ "email": "ops@acme.test", "password": PASSWORD }),
            )
            .await;
        problem(response, 400, "validation/invalid-request").await;
    }
}

#[tokio::test]
async fn a_second_signup_with_the_same_email_is_refused() {
    let app = TestApp::spawn().await;
    app.signed_up("ops@acme.test").await;
    let again = app.signup("OPS@acme.test", "another password").await;
    let body = problem(again, 409, "auth/account-exists").await;
    assert!(!body.to_string().contains("another password"));
    let users: i64 = app.scalar("SELECT count(*) FROM auth.users", &[]).await;
    let partners: i64 = app.scalar("SELECT count(*) FROM partners", &[]).await;
    assert_eq!((users, partners), (1, 1));
    assert_eq!(
        app.login("ops@acme.test", PASSWORD).await.status(),
        200,
        "the original password still works"
    );
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_sha256_hashes_out_of_reach_of_api_roles() {
    let app = TestApp::spawn().await;
    let session = app.signed_up("ops@acme.test").await;
    let refresh_token = text(&session["refresh_token"]);
    let rows = app
        .db
        .admin()
        .await
        .query(
            "SELECT t.token_hash, row_to_json(t)::text, row_to_json(s)::text
             FROM auth.epai_refresh_tokens t JOIN auth.epai_sessions s ON s.id = t.session_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let expected_hash = RefreshToken::parse(refresh_token).unwrap().hash();
    assert_eq!(rows[0].get::<_, String>(0), expected_hash.as_str());
    for column in [1, 2] {
        let stored: String = rows[0].get(column);
        assert!(!stored.contains(refresh_token), "{stored}");
    }

    for table in ["auth.epai_sessions", "auth.epai_refresh_tokens"] {
        for role in ["anon", "authenticated"] {
            let readable: bool = app
                .scalar(
                    "SELECT has_table_privilege($1::text, $2::text::regclass, 'SELECT')",
                    &[&role, &table],
                )
                .await;
            assert!(!readable, "{role} can read {table}");
        }
        let row_security: bool = app
            .scalar(
                "SELECT relrowsecurity FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await;
        assert!(row_security, "{table} has row-level security");
    }
}

#[tokio::test]
async fn ten_failed_logins_lock_the_account_for_an_hour_but_not_others() {
    let mut app = TestApp::spawn().await;
    app.signed_up("target@acme.test").await;
    app.signed_up("bystander@acme.test").await;
    for _ in 0..10 {
        let wrong = app
            .login("target@acme.test", "not the password at all")
            .await;
        problem(wrong, 400, "auth/invalid-credentials").await;
    }
    let locked = app.login("target@acme.test", PASSWORD).await;
    let retry_after: i64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    problem(locked, 429, "rate-limit/exceeded").await;
    assert_eq!(
        app.login("bystander@acme.test", PASSWORD).await.status(),
        200
    );

    let admin = app.db.admin().await;
    app.shutdown().await;
    let locks: i64 = admin
        .query_one(
            "SELECT count(*) FROM security_events WHERE event_type = 'login_locked'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 1);
}
