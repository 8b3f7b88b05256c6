use std::net::SocketAddr;
use std::sync::Arc;

use epai_server::rate_limit::RateLimiter;
use epai_server::{JwtKeys, ServerSettings};
use epai_store::testing::TestDatabase;
use tokio::sync::oneshot;

/// The secret every test server signs session tokens with.
pub const TEST_JWT_SECRET: &[u8] = b"test secret for session tokens, 32+ bytes";

/// The value of the series `name{...}` in a `/metrics` text whose labels include every one of
/// `labels`, if there is one.
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
                && labels
                    .iter()
                    .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
}

/// A server on a random port over a fresh database; stops when dropped.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The server's session keys, for tests that mint or inspect tokens themselves.
    pub jwt: Arc<JwtKeys>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDatabase::migrated().await).await
    }

    pub async fn spawn_on(db: TestDatabase) -> Self {
        Self::spawn_with(db, ServerSettings::default()).await
    }

    /// A second server on the same database (the first must have been shut down or kept).
    pub async fn spawn_sharing(other: &TestApp) -> Self {
        Self::spawn_with(other.db.sibling(), ServerSettings::default()).await
    }

    pub async fn spawn_with(db: TestDatabase, settings: ServerSettings) -> Self {
        let limiter = settings.rate_limits.limiter().unwrap();
        Self::spawn_with_limiter(db, settings, limiter).await
    }

    pub async fn spawn_with_limiter(
        db: TestDatabase,
        settings: ServerSettings,
        limiter: RateLimiter,
    ) -> Self {
        let store = db.store();
        Self::spawn_serving(db, store, settings, limiter).await
    }

    /// A server whose store has `options` (timeouts, pool size).
    pub async fn spawn_with_store_options(
        db: TestDatabase,
        options: &epai_store::StoreOptions,
        settings: ServerSettings,
    ) -> Self {
        let limiter = settings.rate_limits.limiter().unwrap();
        let store = db.store_with(options);
        Self::spawn_serving(db, store, settings, limiter).await
    }

    async fn spawn_serving(
        db: TestDatabase,
        store: epai_store::Store,
        settings: ServerSettings,
        limiter: RateLimiter,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let jwt = Arc::new(JwtKeys::from_secret(TEST_JWT_SECRET).unwrap());
        let (state, background) = epai_server::start_with_limiter(
            store,
            settings,
            JwtKeys::from_secret(TEST_JWT_SECRET).unwrap(),
            limiter,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            epai_server::serve_with_listener(state, listener, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
            background.shutdown().await;
        });
        Self {
            address,
            client: reqwest::Client::new(),
            db,
            jwt,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops accepting requests, finishes in-flight ones and waits until everything accepted
    /// is stored.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_anonymous(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Checks the problem+json shape shared by every error and returns the body.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_eq!(body["error"], true);
    assert_eq!(body["message"], body["detail"]);
    assert!(body["title"].is_string() && body["type"].is_string());
    body
}

/// A partner with an account and a fresh API key.
pub struct TestPartner {
    pub key: String,
    pub partner_id: uuid::Uuid,
    pub user_id: epai_domain::AuthUserId,
}

impl TestApp {
    pub async fn partner(&self, name: &str) -> TestPartner {
        partner_on(&self.db, name).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("apikey", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `body` as sent, byte for byte, with `key` and `content_type`: for bodies `post_json`
    /// cannot produce (malformed JSON, lone surrogates, numbers beyond a double).
    pub async fn post_raw(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("apikey", key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_with_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("apikey", key)
            .send()
            .await
            .unwrap()
    }

    /// Rows of `table` (a fixed table name) whose partner is `partner`.
    pub async fn count_rows(&self, table: &str, partner: uuid::Uuid) -> i64 {
        self.db
            .admin()
            .await
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE partner_id = $1"),
                &[&partner],
            )
            .await
            .unwrap()
            .get(0)
    }
}

impl TestApp {
    /// Signs up a new portal account and returns its access token.
    pub async fn portal_session(&self, email: &str) -> String {
        let response = self
            .post_anonymous(
                "/auth/v1/signup",
                &serde_json::json!({ "email": email, "password": "a long enough password", "data": { "name": "Portal Co" } }),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The JSON answer of a request with `Authorization: Bearer <token>`.
    pub async fn bearer_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> serde_json::Value {
        self.with_bearer(method, path, token)
            .await
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn with_bearer(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }
}

/// A partner with an account and a fresh API key in `db`, before or without a server.
pub async fn partner_on(db: &TestDatabase, name: &str) -> TestPartner {
    let store = db.store();
    let new = epai_store::NewPartner {
        name: epai_domain::PartnerName::parse(name).unwrap(),
        email: epai_domain::Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4().simple()))
            .unwrap(),
        password_hash: None,
    };
    let partner = store
        .as_service_role(async |s| s.create_partner(&new).await)
        .await
        .unwrap();
    let user_id = partner.require_user().unwrap();
    let key = store
        .as_user(user_id, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    TestPartner {
        key,
        partner_id: partner.id.as_uuid(),
        user_id,
    }
}
