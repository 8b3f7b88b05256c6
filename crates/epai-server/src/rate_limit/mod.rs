//! Request rate limits (DESIGN.md §3): GCRA per API key and per client IP.
//!
//! A [`RateLimiter`] answers "may this subject make one more request now?" with a [`Decision`]
//! that also carries what the response headers report. Budgets are per minute and refill
//! evenly: a fresh subject may send its whole per-minute quota at once, then one request every
//! `60 / quota` seconds.
//!
//! State lives in this process ([`RateLimiter::in_process`]) or, when several replicas share the
//! load, in Redis ([`RateLimiter::redis`]). The Redis mode fails open: while Redis cannot be
//! reached every request is allowed (and one warning is logged per outage), because refusing all
//! traffic, or answering 500, over a limiter outage would turn a protective feature into an
//! outage of the whole API.

mod clock;
mod in_process;
mod redis_backend;

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

pub use clock::{Clock, FakeRelativeClock};
pub use in_process::InProcessLimiter;
pub use redis_backend::{RedisLimiter, RedisOptions};

/// Requests per minute per API key when neither configuration nor a partner override says
/// otherwise (the original deployment's limit).
pub const DEFAULT_PER_KEY: u32 = 120;
/// Requests per minute per client IP for traffic without a valid credential.
pub const DEFAULT_PER_IP: u32 = 30;
/// The period every quota is expressed over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Who a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A verified credential, named by a stable non-secret identifier such as its partner id;
    /// never the secret itself, since subjects end up in Redis keys and logs.
    Key(String),
    /// A client address, for unauthenticated and failed-auth traffic.
    Ip(IpAddr),
}

impl Subject {
    /// The policy name reported in the `RateLimit-Policy` and `RateLimit` headers.
    pub fn policy(&self) -> &'static str {
        match self {
            Subject::Key(_) => "key",
            Subject::Ip(_) => "ip",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Key(id) => f.write_str(id),
            Subject::Ip(ip) => ip.fmt(f),
        }
    }
}

/// How many requests a subject may make per minute; 0 turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub per_minute: u32,
}

impl Quota {
    pub const OFF: Quota = Quota { per_minute: 0 };

    pub fn per_minute(per_minute: u32) -> Self {
        Self { per_minute }
    }

    pub fn is_off(&self) -> bool {
        self.per_minute == 0
    }
}

/// The time it takes one request's worth of budget to come back.
fn emission_interval(limit: NonZeroU32) -> Duration {
    WINDOW / limit.get()
}

/// The outcome of one check, with everything the response headers report.
///
/// `limit == 0` means the policy is off: the request is allowed and [`Decision::write_headers`]
/// writes nothing, since there is no limit to describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `"key"` or `"ip"`.
    pub policy: &'static str,
    /// The quota: requests per minute, which is also the largest burst.
    pub limit: u32,
    /// Requests the subject may still make right now.
    pub remaining: u32,
    /// Time until the whole quota is available again.
    pub reset_after: Duration,
    /// When denied, the time until the next request would be allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    fn unlimited(policy: &'static str) -> Self {
        Self {
            allowed: true,
            policy,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: None,
        }
    }

    /// An allowed request from a subject with a full budget: what a fresh subject sees after its
    /// first request, and what failing open reports, since the real state is unknown then.
    fn first_of_fresh_budget(policy: &'static str, limit: NonZeroU32) -> Self {
        Self {
            allowed: true,
            policy,
            limit: limit.get(),
            remaining: limit.get() - 1,
            reset_after: emission_interval(limit),
            retry_after: None,
        }
    }

    /// Writes the IETF httpapi draft fields (`RateLimit-Policy`, `RateLimit`), the legacy
    /// `X-RateLimit-*` headers the original clients read and, when denied, `Retry-After`. All
    /// times are whole seconds rounded up, so a client that waits that long is never early.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if self.limit == 0 {
            return;
        }
        let reset = whole_seconds_rounded_up(self.reset_after);
        let policy = format!(
            "\"{}\";q={};w={}",
            self.policy,
            self.limit,
            WINDOW.as_secs()
        );
        let state = format!("\"{}\";r={};t={reset}", self.policy, self.remaining);
        let fields = [
            (HeaderName::from_static("ratelimit-policy"), policy),
            (HeaderName::from_static("ratelimit"), state),
            (
                HeaderName::from_static("x-ratelimit-limit"),
                self.limit.to_string(),
            ),
            (
                HeaderName::from_static("x-ratelimit-remaining"),
                self.remaining.to_string(),
            ),
            (
                HeaderName::from_static("x-ratelimit-reset"),
                reset.to_string(),
            ),
        ];
        for (name, value) in fields {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        if let Some(retry_after) = self.retry_after {
            let seconds = whole_seconds_rounded_up(retry_after).max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

fn whole_seconds_rounded_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Counts requests per subject against their quota.
#[derive(Clone)]
pub enum RateLimiter {
    InProcess(InProcessLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter {
    /// State in this process's memory, on the system clock.
    pub fn in_process() -> Self {
        Self::InProcess(InProcessLimiter::new(Clock::system()))
    }

    /// State in the Redis server at `url`, shared by every replica pointed at it. Connects
    /// lazily (a Redis that is down at startup only means failing open until it is up); must be
    /// called within a Tokio runtime.
    pub fn redis(url: &str) -> Result<Self, RateLimitError> {
        RedisLimiter::connect(url, RedisOptions::default()).map(Self::Redis)
    }

    /// Counts one request by `subject` against `quota` and says whether it may proceed.
    pub async fn check(&self, subject: &Subject, quota: Quota) -> Decision {
        let Some(limit) = NonZeroU32::new(quota.per_minute) else {
            return Decision::unlimited(subject.policy());
        };
        match self {
            Self::InProcess(limiter) => limiter.check(subject, limit),
            Self::Redis(limiter) => limiter.check(subject, limit).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("cannot use the Redis server for rate limits: {0}")]
    Redis(String),
}

/// The configured limits (`EPAI_RATE_LIMIT_PER_KEY`, `EPAI_RATE_LIMIT_PER_IP`,
/// `EPAI_REDIS_URL`).
#[derive(Clone)]
pub struct RateLimitSettings {
    pub per_key: Quota,
    pub per_ip: Quota,
    /// May carry a password, so `Debug` does not show it.
    pub redis_url: Option<String>,
}

impl RateLimitSettings {
    /// The limiter these settings ask for: shared through Redis when a URL is set, otherwise in
    /// this process.
    pub fn limiter(&self) -> Result<RateLimiter, RateLimitError> {
        match &self.redis_url {
            Some(url) => RateLimiter::redis(url),
            None => Ok(RateLimiter::in_process()),
        }
    }

    /// A partner's key quota: its override when it has one, the configured default otherwise.
    pub fn key_quota(&self, partner_override: Option<i32>) -> Quota {
        partner_override
            .and_then(|per_minute| u32::try_from(per_minute).ok())
            .map_or(self.per_key, Quota::per_minute)
    }
}

impl fmt::Debug for RateLimitSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitSettings")
            .field("per_key", &self.per_key)
            .field("per_ip", &self.per_ip)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests;
