//! One HTTP attempt at a delivery: a signed POST with connect and total timeouts, no proxy, no
//! redirects followed, the response body read only up to a cap, and every address checked
//! against the policy before connecting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, USER_AGENT};

use crate::address::{AddressRefused, GuardedResolver, UrlPolicy, UrlRefusal, literal_address};

/// Most of a response body read before the connection is dropped: receivers answer with a
/// status, not a document.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendOptions {
    /// For connecting, including the TLS handshake.
    pub connect_timeout: Duration,
    /// For the whole attempt: connecting, sending, and the answer with its (capped) body.
    pub timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The receiver answered, but not with 2xx (3xx included: redirects are not followed).
    Status(u16),
    /// No complete answer within the total timeout.
    Timeout,
    /// The connection (or its TLS handshake) failed, with the cause.
    Connect(String),
    /// The URL or one of the addresses its host resolved to is not allowed.
    Refused(UrlRefusal),
    Other(String),
}

impl Failure {
    /// What the delivery record says about it.
    pub fn describe(&self, options: &SendOptions) -> String {
        match self {
            Self::Status(status) => format!("the receiver answered {status}"),
            Self::Timeout => format!(
                "no complete answer within {} s",
                options.timeout.as_secs_f64()
            ),
            Self::Connect(cause) => format!("could not connect: {cause}"),
            Self::Refused(refusal) => format!("refused: {refusal}"),
            Self::Other(cause) => format!("the request failed: {cause}"),
        }
    }
}

/// How an attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    pub latency: Duration,
    /// `None` for a 2xx answer.
    pub failure: Option<Failure>,
}

/// The headers and body of one signed message.
pub struct SignedMessage<'a> {
    pub message_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a str,
}

/// Sends webhook requests; one per process, sharing connections.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<UrlPolicy>,
    options: SendOptions,
}

impl Sender {
    pub fn new(policy: UrlPolicy, options: SendOptions) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            policy,
            options,
        })
    }

    pub fn options(&self) -> &SendOptions {
        &self.options
    }

    /// POSTs `message` to `url`.
    pub async fn send(&self, url: &str, message: &SignedMessage<'_>) -> Sent {
        let started = Instant::now();
        let failed = |failure| Sent {
            status: None,
            latency: started.elapsed(),
            failure: Some(failure),
        };
        let url = match self.policy.parse(url) {
            Ok(url) => url,
            Err(refusal) => return failed(Failure::Refused(refusal)),
        };
        // An address literal is connected to without resolving: check it here.
        if literal_address(&url).is_some_and(|ip| !self.policy.allows(ip)) {
            return failed(Failure::Refused(UrlRefusal::NonPublicAddress));
        }
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("EPAI-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", message.message_id)
            .header("webhook-timestamp", message.timestamp.to_string())
            .header("webhook-signature", message.signature)
            .body(message.body.to_owned());
        let answered = async {
            let mut response = request.send().await?;
            let status = response.status();
            let mut read = 0;
            while read < MAX_RESPONSE_BYTES {
                match response.chunk().await? {
                    Some(chunk) => read += chunk.len(),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>(status)
        }
        .await;
        match answered {
            Ok(status) => Sent {
                status: Some(status.as_u16()),
                latency: started.elapsed(),
                failure: (!status.is_success()).then_some(Failure::Status(status.as_u16())),
            },
            Err(error) => failed(classify(&error)),
        }
    }
}

fn classify(error: &reqwest::Error) -> Failure {
    let mut cause: &dyn std::error::Error = error;
    let mut root = None;
    while let Some(source) = cause.source() {
        if source.is::<AddressRefused>() {
            return Failure::Refused(UrlRefusal::NonPublicAddress);
        }
        root = Some(source);
        cause = source;
    }
    if error.is_timeout() {
        return Failure::Timeout;
    }
    // reqwest's own message names the URL; the innermost cause does not.
    let cause = root.map_or_else(|| "unknown cause".to_owned(), ToString::to_string);
    if error.is_connect() {
        Failure::Connect(cause)
    } else {
        Failure::Other(cause)
    }
}
