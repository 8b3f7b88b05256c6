//! What a webhook message is: its event types and the envelope every delivery carries.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The kinds of message a webhook can receive. Partners subscribe to the first three;
/// `webhook.test` is sent only on request, to every webhook asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub enum WebhookEventType {
    #[serde(rename = "insight.created")]
    InsightCreated,
    #[serde(rename = "insight.updated")]
    InsightUpdated,
    #[serde(rename = "api_key.expiring")]
    ApiKeyExpiring,
    #[serde(rename = "webhook.test")]
    Test,
}

/// A name that is not one of the subscribable event types.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type; expected one of insight.created, insight.updated, api_key.expiring")]
pub struct UnknownEventType;

impl WebhookEventType {
    /// The types a webhook can subscribe to, in display order.
    pub const SUBSCRIBABLE: [Self; 3] = [
        Self::InsightCreated,
        Self::InsightUpdated,
        Self::ApiKeyExpiring,
    ];

    /// What a webhook gets when it names none.
    pub const DEFAULT: [Self; 2] = [Self::InsightCreated, Self::InsightUpdated];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsightCreated => "insight.created",
            Self::InsightUpdated => "insight.updated",
            Self::ApiKeyExpiring => "api_key.expiring",
            Self::Test => "webhook.test",
        }
    }

    /// A subscribable type by name (`webhook.test` is not one).
    pub fn parse_subscribable(name: &str) -> Result<Self, UnknownEventType> {
        Self::SUBSCRIBABLE
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or(UnknownEventType)
    }

    /// Any type by name, as stored.
    pub fn from_stored(name: &str) -> Option<Self> {
        Self::SUBSCRIBABLE
            .into_iter()
            .chain([Self::Test])
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every webhook request: `{type, id, created_at, data}`. `id` is the message id,
/// the same in the `webhook-id` header and on every retry, so receivers deduplicate on it.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookMessage<T> {
    #[serde(rename = "type")]
    pub kind: WebhookEventType,
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub data: T,
}

impl<T: Serialize> WebhookMessage<T> {
    /// A new message with a fresh id (`msg_` and 32 hex digits).
    pub fn new(kind: WebhookEventType, created_at: DateTime<Utc>, data: T) -> Self {
        Self {
            kind,
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            created_at,
            data,
        }
    }

    /// The exact bytes that are signed and sent.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a message of JSON values serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribable_types_parse_and_the_test_type_does_not() {
        for kind in WebhookEventType::SUBSCRIBABLE {
            assert_eq!(
                WebhookEventType::parse_subscribable(kind.as_str()),
                Ok(kind)
            );
            assert_eq!(WebhookEventType::from_stored(kind.as_str()), Some(kind));
        }
        assert!(WebhookEventType::parse_subscribable("webhook.test").is_err());
        assert!(WebhookEventType::parse_subscribable("INSIGHT.CREATED").is_err());
        assert_eq!(
            WebhookEventType::from_stored("webhook.test"),
            Some(WebhookEventType::Test)
        );
    }

    #[test]
    fn a_message_carries_type_id_time_and_data() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let message = WebhookMessage::new(
            WebhookEventType::InsightCreated,
            at,
            serde_json::json!({"id": "i"}),
        );
        let body: serde_json::Value = serde_json::from_str(&message.to_body()).unwrap();
        assert_eq!(body["type"], "insight.created");
        assert_eq!(body["created_at"], "2026-11-25T10:00:00Z");
        assert_eq!(body["data"]["id"], "i");
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        let other = WebhookMessage::new(WebhookEventType::InsightCreated, at, ());
        assert_ne!(other.id, message.id);
    }
}
