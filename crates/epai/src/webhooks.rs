//! Webhook configuration shared by `epai serve` and `epai worker`: the key that seals signing
//! secrets, which targets are allowed, and the delivery workers of this process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use epai_server::WebhookSettings;
use epai_store::Store;
use epai_webhooks::{
    DeliveryOptions, DeliveryUpkeep, DeliveryWorker, SecretCipher, SendOptions, Sender, UrlPolicy,
    wake_on_new_deliveries,
};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// File in the data directory holding the generated webhook key.
pub const KEY_FILE: &str = "webhook_key";

#[derive(Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Key (base64 of 32 bytes) sealing webhook signing secrets in the database; the same on
    /// every server and worker [default: generated once and kept in <DATA_DIR>/webhook_key].
    #[arg(long, env = "EPAI_WEBHOOK_KEY", hide_env_values = true)]
    pub webhook_key: Option<String>,

    /// Let webhooks reach loopback, private, link-local and other non-public addresses.
    #[arg(long, env = "EPAI_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// Comma-separated hosts webhooks may reach over plain http (local development).
    #[arg(long, env = "EPAI_WEBHOOK_HTTP_HOSTS", value_delimiter = ',')]
    pub webhook_http_hosts: Vec<String>,

    /// Webhook deliveries this process sends at once; 0 leaves them to other processes.
    #[arg(long, env = "EPAI_WEBHOOK_WORKERS", default_value_t = 8)]
    pub webhook_workers: usize,

    /// Seconds one delivery attempt may take in all (connecting takes at most 5 of them).
    #[arg(long, env = "EPAI_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub webhook_timeout_seconds: u64,

    /// Seconds a rotated-out signing secret keeps signing beside the new one, unless the
    /// rotation asks for another period.
    #[arg(long, env = "EPAI_WEBHOOK_SECRET_GRACE_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub webhook_secret_grace_seconds: u64,

    /// Days of nothing but failed attempts after which a webhook is switched off.
    #[arg(long, env = "EPAI_WEBHOOK_DISABLE_AFTER_DAYS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=365))]
    pub webhook_disable_after_days: u64,
}

impl WebhookArgs {
    /// The configured key, or the one kept in (and on first use generated into) `data_dir`.
    pub fn cipher(&self, data_dir: &Path) -> anyhow::Result<Arc<SecretCipher>> {
        let text = match &self.webhook_key {
            Some(key) => key.clone(),
            None => crate::secret_file::load_or_create(data_dir, KEY_FILE, "webhook key", || {
                SecretCipher::generate().to_text()
            })?,
        };
        Ok(Arc::new(
            SecretCipher::from_text(&text).context("EPAI_WEBHOOK_KEY")?,
        ))
    }

    pub fn policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_private: self.webhook_allow_private,
            http_hosts: self
                .webhook_http_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    pub fn server_settings(&self, cipher: Arc<SecretCipher>) -> WebhookSettings {
        WebhookSettings {
            cipher,
            policy: self.policy(),
            secret_grace: Duration::from_secs(self.webhook_secret_grace_seconds),
            ..WebhookSettings::default()
        }
    }

    fn delivery_options(&self) -> DeliveryOptions {
        DeliveryOptions {
            visibility: Duration::from_secs(self.webhook_timeout_seconds + 45),
            per_partner: i64::try_from((self.webhook_workers / 4).max(2)).unwrap_or(2),
            disable_after: Duration::from_secs(self.webhook_disable_after_days * 24 * 3600),
            ..DeliveryOptions::default()
        }
    }

    /// Starts this process's delivery workers and the queue upkeep on `tasks` (none when
    /// `webhook_workers` is 0).
    pub fn start(
        &self,
        store: &Store,
        cipher: &Arc<SecretCipher>,
        stopping: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<()> {
        if self.webhook_workers == 0 {
            return Ok(());
        }
        let timeout = Duration::from_secs(self.webhook_timeout_seconds);
        let sender = Sender::new(
            self.policy(),
            SendOptions {
                connect_timeout: timeout.min(Duration::from_secs(5)),
                timeout,
            },
        )
        .context("cannot set up the webhook HTTP client")?;
        let wakeups = Arc::new(Notify::new());
        let waker = tokio::spawn(wake_on_new_deliveries(store.clone(), wakeups.clone()));
        for _ in 0..self.webhook_workers {
            let worker = DeliveryWorker::new(
                store.clone(),
                sender.clone(),
                cipher.clone(),
                self.delivery_options(),
            );
            let (wakeups, stopping) = (wakeups.clone(), stopping.clone());
            tasks.spawn(async move { worker.run(wakeups, stopping).await });
        }
        let upkeep = DeliveryUpkeep::new(store.clone(), DeliveryUpkeep::DEFAULT_RETENTION);
        let upkeep_stopping = stopping.clone();
        tasks.spawn(async move {
            upkeep.run(Duration::from_secs(60), upkeep_stopping).await;
        });
        let mut listener_stopping = stopping.clone();
        tasks.spawn(async move {
            let _ = listener_stopping.wait_for(|stop| *stop).await;
            waker.abort();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        webhooks: WebhookArgs,
    }

    fn args(flags: &[&str]) -> WebhookArgs {
        Command::try_parse_from(std::iter::once("epai").chain(flags.iter().copied()))
            .unwrap()
            .webhooks
    }

    #[test]
    fn the_webhook_key_is_generated_private_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = args(&[]).cipher(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = args(&[]).cipher(dir.path()).unwrap();
        assert_eq!(again.key_id(), first.key_id());
        let elsewhere = args(&[]).cipher(&dir.path().join("other")).unwrap();
        assert_ne!(elsewhere.key_id(), first.key_id());
    }

    #[test]
    fn a_configured_key_wins_and_a_malformed_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretCipher::generate();
        // `=`: a base64url key may begin with `-`, which would read as another flag.
        let configured = args(&[&format!("--webhook-key={}", key.to_text())])
            .cipher(dir.path())
            .unwrap();
        assert_eq!(configured.key_id(), key.key_id());
        assert!(!dir.path().join(KEY_FILE).exists(), "nothing generated");
        let error = args(&["--webhook-key", "too short"])
            .cipher(dir.path())
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("EPAI_WEBHOOK_KEY"),
            "{error:#}"
        );
    }

    #[test]
    fn the_policy_and_limits_follow_the_flags() {
        let parsed = args(&[
            "--webhook-allow-private",
            "true",
            "--webhook-http-hosts",
            "LocalHost, 127.0.0.1",
            "--webhook-workers",
            "16",
        ]);
        let policy = parsed.policy();
        assert!(policy.allow_private);
        assert_eq!(policy.http_hosts, ["localhost", "127.0.0.1"]);
        assert_eq!(parsed.delivery_options().per_partner, 4);
        let defaults = args(&[]);
        assert!(!defaults.policy().allow_private);
        assert_eq!(defaults.delivery_options().per_partner, 2);
        assert!(Command::try_parse_from(["epai", "--webhook-timeout-seconds", "0"]).is_err());
    }
}
