//! EPAI's outgoing webhooks: what a message looks like on the wire and how it gets there.
//!
//! - [`SigningSecret`]: a webhook's `whsec_` secret, shown once; [`SecretCipher`] seals it for
//!   the database under the server's key, since an HMAC key cannot be stored as a hash.
//! - [`signature`]: Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256>`).
//! - [`UrlPolicy`]: which URLs and addresses webhooks may reach (server-side request forgery),
//!   checked when a webhook is saved and again on every connection.
//! - [`Sender`]: one HTTP attempt, with timeouts, no redirects, no proxy, capped bodies.
//! - [`DeliveryWorker`]: claims deliveries from the store's queue and sends them;
//!   [`DeliveryWorker::run_one`] takes the time as a parameter so tests drive the retry
//!   schedule. [`DeliveryUpkeep`] keeps the queue tidy.
//!
//! Must not write SQL (the store owns the queue) or parse incoming requests.

mod address;
mod cipher;
mod secret;
mod send;
pub mod signature;
mod worker;

pub use address::{MAX_URL_LENGTH, UrlPolicy, UrlRefusal, is_public};
pub use cipher::{CipherError, KeyError, SecretCipher};
pub use secret::{SECRET_PREFIX, SecretError, SigningSecret};
pub use send::{Failure, SendOptions, Sender, Sent, SignedMessage};
pub use worker::{
    DeliveryOptions, DeliveryUpkeep, DeliveryWorker, KEY_EXPIRY_WARNING, Outcome, UpkeepTick,
    jittered_retry_delay, retry_delay, wake_on_new_deliveries,
};
