//! A headless Chromium under a chromedriver this test starts on a free port, and the few
//! operations the tests need, each waiting for its element with a bounded timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any page or element may take to appear.
const WAIT: Duration = Duration::from_secs(15);

pub struct Browser {
    pub client: Client,
    /// Killed on drop (`kill_on_drop`), so a failing test leaves no driver behind.
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver)"
            );
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        // chromedriver announces on stdout when it accepts sessions.
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it was ready");
        })
        .await
        .expect("chromedriver did not start within the time limit");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session");
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} appeared: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    pub async fn attr(&self, css: &str, name: &str) -> String {
        self.wait_for(css)
            .await
            .prop(name)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Runs `script` in the page and returns its result as text.
    pub async fn script(&self, script: &str) -> String {
        match self.client.execute(script, Vec::new()).await.unwrap() {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }
    }

    pub async fn assert_no_alert(&self) {
        let alert = self.client.get_alert_text().await;
        assert!(alert.is_err(), "an alert is open: {alert:?}");
    }

    /// Takes a screenshot (which fails if the page cannot be rendered) and, when
    /// `EPAI_SCREENSHOTS` names a directory (`EPAI_SCREENSHOTS=docs/screenshots` refreshes the
    /// README's pictures), saves it there as `<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        if let Some(dir) = std::env::var_os("EPAI_SCREENSHOTS") {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}
