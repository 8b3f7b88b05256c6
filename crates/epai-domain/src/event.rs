use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::json_text::{self, Unstorable};

/// What kind of event this is: a letter, then up to 99 letters, digits or `_ . : -`
/// (`page_view`, `user_engagement`, `checkout.completed`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let Some(first) = chars.next() else {
            return Err("must not be empty".into());
        };
        if raw.len() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if !first.is_ascii_alphabetic() {
            return Err("must start with a letter".into());
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')) {
            return Err("may contain only letters, digits and _ . : -".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bounds on what one event may be. Defaults follow DESIGN.md §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Serialized size of `data` plus `metadata`.
    pub max_event_bytes: usize,
    pub max_batch_events: usize,
    /// How far in the past a `timestamp` may lie (imports of history are fine, typos are not).
    pub max_age: Duration,
    /// How far in the future a `timestamp` may lie (clock skew of the sender).
    pub max_future_skew: Duration,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 64 * 1024,
            max_batch_events: 1000,
            max_age: Duration::from_secs(5 * 365 * 24 * 3600),
            max_future_skew: Duration::from_secs(5 * 60),
        }
    }
}

/// One problem with one field of a request, reported to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An event as a partner sends it. Unknown fields are refused so typos do not vanish silently.
///
/// `data` and `metadata` stay the JSON text they arrived as: they are checked, then stored as
/// they are, never parsed into a tree.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event_type": "page_view", "data": {"url": "/pricing", "session_id": "s1"}}))]
pub struct EventInput {
    /// A letter, then up to 99 letters, digits or `_ . : -`.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_.:-]{0,99}$", max_length = 100)]
    pub event_type: String,
    /// The event's own fields; a JSON object of at most 64 KiB together with `metadata`.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Where the event comes from (default `api`).
    #[serde(default)]
    pub source: Option<String>,
    /// Version of the sender's event schema (default `1.0`).
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
    /// When the event happened (RFC 3339); defaults to the time it is received.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
}

/// An event that passed validation and can be stored as is: `data` and `metadata` are JSON
/// objects that `jsonb` accepts, in the text they arrived as.
#[derive(Debug, Clone)]
pub struct ValidEvent {
    pub event_type: EventType,
    pub data: Box<RawValue>,
    pub source: String,
    pub version: String,
    pub metadata: Option<Box<RawValue>>,
    pub occurred_at: DateTime<Utc>,
}

const DEFAULT_SOURCE: &str = "api";
const DEFAULT_VERSION: &str = "1.0";
const MAX_LABEL_CHARS: usize = 100;

impl EventInput {
    /// Checks every field and reports all problems at once.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        limits: &EventLimits,
    ) -> Result<ValidEvent, Vec<FieldError>> {
        let mut errors = Vec::new();
        let event_type = EventType::parse(&self.event_type)
            .map_err(|m| errors.push(FieldError::new("event_type", m)))
            .ok();
        let data = object("data", self.data, &mut errors);
        // `"metadata": null` arrives as `None`.
        let metadata = self
            .metadata
            .and_then(|raw| object("metadata", raw, &mut errors));
        let source = label("source", self.source, DEFAULT_SOURCE, &mut errors);
        let version = label("version", self.version, DEFAULT_VERSION, &mut errors);
        let occurred_at = match self.timestamp {
            None => Some(now),
            Some(raw) => parse_timestamp(&raw, now, limits)
                .map_err(|m| errors.push(FieldError::new("timestamp", m)))
                .ok(),
        };
        let size = data
            .as_ref()
            .map_or(0, |(_, size)| *size)
            .saturating_add(metadata.as_ref().map_or(0, |(_, size)| *size));
        if size > limits.max_event_bytes {
            let stated = if size == usize::MAX {
                "beyond any limit".to_owned()
            } else {
                format!("{size} bytes")
            };
            errors.push(FieldError::new(
                "data",
                format!(
                    "data and metadata are {stated} as stored (numbers written out in full); \
                     the limit is {} bytes per event",
                    limits.max_event_bytes
                ),
            ));
        }
        match (event_type, data, occurred_at) {
            (Some(event_type), Some((data, _)), Some(occurred_at)) if errors.is_empty() => {
                Ok(ValidEvent {
                    event_type,
                    data,
                    source,
                    version,
                    metadata: metadata.map(|(metadata, _)| metadata),
                    occurred_at,
                })
            }
            _ => Err(errors),
        }
    }
}

/// `raw` and its stored size, when it is a JSON object `jsonb` can store; else the problem is
/// added to `errors`.
fn object(
    field: &str,
    raw: Box<RawValue>,
    errors: &mut Vec<FieldError>,
) -> Option<(Box<RawValue>, usize)> {
    let text = raw.get();
    if !text.starts_with('{') {
        errors.push(FieldError::new(
            field,
            format!("must be a JSON object, not {}", json_kind(text)),
        ));
        return None;
    }
    match json_text::stored_size(text) {
        Ok(size) => Some((raw, size)),
        Err(Unstorable::Nul) => {
            // The rare refusal pays for a parse, to name where the NUL is.
            let path = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|value| find_nul_character(&value, field))
                .unwrap_or_else(|| field.to_owned());
            errors.push(FieldError::new(
                path,
                "must not contain the NUL character (\\u0000)",
            ));
            None
        }
        Err(Unstorable::UnpairedSurrogate) => {
            errors.push(FieldError::new(
                field,
                "must not contain half of a UTF-16 surrogate pair (such as \\ud800 alone)",
            ));
            None
        }
        Err(Unstorable::TooDeep) => {
            errors.push(FieldError::new(
                field,
                format!(
                    "must not nest objects and arrays more than {} levels deep",
                    json_text::MAX_NESTING
                ),
            ));
            None
        }
    }
}

/// What kind of JSON value `text` (a well-formed value) is, by its first character.
fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

fn label(field: &str, raw: Option<String>, default: &str, errors: &mut Vec<FieldError>) -> String {
    let Some(raw) = raw else {
        return default.to_owned();
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        errors.push(FieldError::new(field, "must not be empty when given"));
    } else if trimmed.chars().count() > MAX_LABEL_CHARS {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_LABEL_CHARS} characters"),
        ));
    } else if trimmed.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    trimmed.to_owned()
}

fn parse_timestamp(
    raw: &str,
    now: DateTime<Utc>,
    limits: &EventLimits,
) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| "must be an RFC 3339 date-time such as 2026-11-25T14:00:00Z".to_owned())?
        .with_timezone(&Utc);
    let oldest = now - chrono::Duration::from_std(limits.max_age).unwrap_or_default();
    let newest = now + chrono::Duration::from_std(limits.max_future_skew).unwrap_or_default();
    if at < oldest {
        Err(format!("must not be before {}", oldest.to_rfc3339()))
    } else if at > newest {
        Err(format!(
            "must not be more than {} seconds in the future",
            limits.max_future_skew.as_secs()
        ))
    } else {
        Ok(at)
    }
}

/// The JSON path of the first string or key holding `\u0000`, which PostgreSQL's jsonb cannot
/// store.
fn find_nul_character(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul_character(item, &format!("{path}[{i}]"))),
        Value::Object(map) => find_nul_in_map(map, path),
        _ => None,
    }
}

fn find_nul_in_map(map: &Map<String, Value>, path: &str) -> Option<String> {
    map.iter().find_map(|(key, item)| {
        let item_path = format!("{path}.{key}");
        if key.contains('\0') {
            Some(item_path)
        } else {
            find_nul_character(item, &item_path)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn input(value: Value) -> EventInput {
        serde_json::from_value(value).unwrap()
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_minimal_event_gets_defaults() {
        let event = input(json!({"event_type": "page_view", "data": {"url": "/"}}))
            .validate(now(), &EventLimits::default())
            .unwrap();
        assert_eq!(event.event_type.as_str(), "page_view");
        assert_eq!(event.source, "api");
        assert_eq!(event.version, "1.0");
        assert_eq!(event.occurred_at, now());
        assert!(event.metadata.is_none());
    }

    #[test]
    fn event_types_follow_the_pattern() {
        for good in ["page_view", "checkout.completed", "a", "A-b:c_d.9"] {
            assert!(EventType::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "9lives",
            "_x",
            "has space",
            "drop;table",
            "é",
            &"x".repeat(101),
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errors = input(json!({
            "event_type": "",
            "data": [1, 2],
            "source": "  ",
            "metadata": "nope",
            "timestamp": "yesterday"
        }))
        .validate(now(), &EventLimits::default())
        .unwrap_err();
        assert_eq!(
            fields(errors),
            ["event_type", "data", "metadata", "source", "timestamp"]
        );
    }

    #[test]
    fn timestamps_are_bounded() {
        let limits = EventLimits::default();
        let at = |ts: &str| {
            input(json!({"event_type": "x", "data": {}, "timestamp": ts})).validate(now(), &limits)
        };
        assert_eq!(
            at("2026-11-20T08:30:00+02:00").unwrap().occurred_at,
            DateTime::parse_from_rfc3339("2026-11-20T06:30:00Z").unwrap()
        );
        assert!(at("2026-11-25T12:04:00Z").is_ok(), "small skew is fine");
        assert!(at("2026-11-25T12:06:00Z").is_err(), "too far ahead");
        assert!(at("1999-01-01T00:00:00Z").is_err(), "too old");
    }

    #[test]
    fn nul_characters_are_found_wherever_they_hide() {
        let errors = input(json!({"event_type": "x", "data": {"a": [{"b": "x\u{0}y"}]}}))
            .validate(now(), &EventLimits::default())
            .unwrap_err();
        assert_eq!(fields(errors), ["data.a[0].b"]);
        let in_key = input(json!({"event_type": "x", "data": {}, "metadata": {"k\u{0}": 1}}))
            .validate(now(), &EventLimits::default())
            .unwrap_err();
        assert_eq!(fields(in_key), ["metadata.k\u{0}"]);
    }

    #[test]
    fn oversized_events_are_refused() {
        let limits = EventLimits {
            max_event_bytes: 100,
            ..EventLimits::default()
        };
        let big = "x".repeat(200);
        let errors = input(json!({"event_type": "x", "data": {"big": big}}))
            .validate(now(), &limits)
            .unwrap_err();
        assert_eq!(fields(errors), ["data"]);
    }

    fn raw_input(body: &str) -> EventInput {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn data_is_kept_as_the_text_it_arrived_as() {
        let event = raw_input(
            r#"{"event_type": "x", "data": {"price": 1.50, "id": 123456789012345678901234567890}, "metadata": null}"#,
        )
        .validate(now(), &EventLimits::default())
        .unwrap();
        assert_eq!(
            event.data.get(),
            r#"{"price": 1.50, "id": 123456789012345678901234567890}"#
        );
        assert!(event.metadata.is_none());
    }

    #[test]
    fn what_jsonb_cannot_store_is_refused_by_field() {
        let limits = EventLimits::default();
        let deep = "[".repeat(200) + &"]".repeat(200);
        for (body, field) in [
            (
                r#"{"event_type": "x", "data": {"s": "\ud800"}}"#.to_owned(),
                "data",
            ),
            (
                r#"{"event_type": "x", "data": {}, "metadata": {"s": "\udfff"}}"#.to_owned(),
                "metadata",
            ),
            (
                format!(r#"{{"event_type": "x", "data": {{"d": {deep}}}}}"#),
                "data",
            ),
            (
                r#"{"event_type": "x", "data": {"n": 1e1000000}}"#.to_owned(),
                "data",
            ),
        ] {
            let errors = raw_input(&body).validate(now(), &limits).unwrap_err();
            assert_eq!(fields(errors), [field], "{body}");
        }
        let endless = r#"{"event_type": "x", "data": {"n": 1e99999999999999999999999},
            "metadata": {"n": 1e99999999999999999999999}}"#;
        let errors = raw_input(endless).validate(now(), &limits).unwrap_err();
        assert!(errors[0].message.contains("beyond any limit"), "{errors:?}");
        assert!(
            raw_input(r#"{"event_type": "x", "data": {"n": 1e308, "m": 5e-324}}"#)
                .validate(now(), &limits)
                .is_ok(),
            "the whole range of a double fits"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<EventInput>(
            json!({"event_type": "x", "data": {}, "colour": "red"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
