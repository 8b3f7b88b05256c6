//! The vocabulary of EPAI: identifiers, credentials and values parsed once at the edge.
//!
//! Owns the newtypes every other crate passes around (`PartnerId`, `AuthUserId`, `Email`,
//! `PartnerName`, `ApiKey`, `Password`, `RefreshToken`, `EventType`, `ValidEvent`,
//! `WebhookEventType`) and the webhook message envelope. A value of one of these types has
//! already been validated, so the store, engine and server never re-check raw strings.
//!
//! Must not do I/O: no database, no network, no files, no clock.

mod api_key;
mod event;
mod ids;
mod json_text;
mod password;
mod refresh_token;
mod text;
mod webhook;

pub use api_key::{API_KEY_PREFIX, ApiKey, ApiKeyError, ApiKeyHash};
pub use event::{EventInput, EventLimits, EventType, FieldError, ValidEvent};
pub use ids::{AuthUserId, PartnerId, SessionId};
pub use password::{Password, PasswordError};
pub use refresh_token::{REFRESH_TOKEN_BYTES, RefreshToken, RefreshTokenError, RefreshTokenHash};
pub use text::{Email, PartnerName, TextError};
pub use webhook::{UnknownEventType, WebhookEventType, WebhookMessage};
