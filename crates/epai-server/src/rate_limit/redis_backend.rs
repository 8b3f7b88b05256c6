use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Clock, Decision, RateLimitError, Subject, emission_interval};

/// Bounds on how long a request may wait for Redis before failing open.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_RETRIES: usize = 1;

/// Where and on which clock a [`RedisLimiter`] keeps its state.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Prefix of every key: `<namespace>:<policy>:<quota>:<subject>`.
    pub namespace: String,
    pub clock: Clock,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            namespace: "epai:rl".to_owned(),
            clock: Clock::system(),
        }
    }
}

/// GCRA state in Redis, shared by every replica using the same server and namespace. Each check
/// is one atomic script call (EVALSHA, loading the script when Redis does not have it yet).
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Arc<redis::Script>,
    namespace: Arc<str>,
    clock: Clock,
    in_outage: Arc<AtomicBool>,
}

impl RedisLimiter {
    /// Prepares a connection to `url` without opening it; it opens on the first check and
    /// reopens after failures. Must be called within a Tokio runtime.
    pub fn connect(url: &str, options: RedisOptions) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(|e| RateLimitError::Redis(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(CONNECT_RETRIES);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RateLimitError::Redis(e.to_string()))?;
        Ok(Self {
            connection,
            script: Arc::new(redis::Script::new(include_str!("gcra.lua"))),
            namespace: options.namespace.into(),
            clock: options.clock,
            in_outage: Arc::new(AtomicBool::new(false)),
        })
    }

    pub(super) async fn check(&self, subject: &Subject, limit: NonZeroU32) -> Decision {
        let key = format!(
            "{}:{}:{}:{subject}",
            self.namespace,
            subject.policy(),
            limit
        );
        let interval_ms = emission_interval(limit).as_secs_f64() * 1000.0;
        let mut connection = self.connection.clone();
        let reply: redis::RedisResult<(i64, i64, i64, i64)> = self
            .script
            .key(&key)
            .arg(self.clock.unix_millis())
            .arg(interval_ms)
            .arg(limit.get())
            .invoke_async(&mut connection)
            .await;
        match reply {
            Ok((allowed, remaining, reset_after_ms, retry_after_ms)) => {
                if self.in_outage.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis is reachable again; rate limits apply again");
                }
                Decision {
                    allowed: allowed == 1,
                    policy: subject.policy(),
                    limit: limit.get(),
                    remaining: u32::try_from(remaining).unwrap_or(0),
                    reset_after: millis(reset_after_ms),
                    retry_after: (retry_after_ms >= 0).then(|| millis(retry_after_ms)),
                }
            }
            Err(error) => {
                if !self.in_outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "Redis is unreachable; allowing every request until it is back"
                    );
                }
                Decision::first_of_fresh_budget(subject.policy(), limit)
            }
        }
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
