use std::net::SocketAddr;
use std::sync::Arc;

use epai_server::{AccountSettings, AppState, JwtKeys};
use epai_store::testing::TestDatabase;
use tokio::sync::oneshot;

/// The secret every test server signs session tokens with.
pub const TEST_JWT_SECRET: &[u8] = b"test secret for session tokens, 32+ bytes";

/// A server on a random port over a fresh database; stops when dropped.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The server's session keys, for tests that mint or inspect tokens themselves.
    pub jwt: Arc<JwtKeys>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDatabase::migrated().await).await
    }

    pub async fn spawn_on(db: TestDatabase) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let jwt = Arc::new(JwtKeys::from_secret(TEST_JWT_SECRET).unwrap());
        let state = AppState {
            store: db.store(),
            jwt: jwt.clone(),
            accounts: AccountSettings::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(epai_server::serve_with_listener(
            state,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            client: reqwest::Client::new(),
            db,
            jwt,
            stop: Some(stop),
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

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
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
