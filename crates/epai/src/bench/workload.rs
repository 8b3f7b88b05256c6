//! The one event shape every phase stores, so PostgreSQL alone and EPAI write the same rows.

use serde_json::{Value, json};

pub const EVENT_TYPE: &str = "page_view";
pub const SOURCE: &str = "web";
pub const VERSION: &str = "1.0";

/// A realistic page view's `data`, about 200 bytes of JSON.
pub fn event_data() -> Value {
    json!({
        "page": "/pricing/enterprise",
        "referrer": "https://www.google.com/search?q=predictive+analytics",
        "session_id": "8f14e45f-ceea-467f-a0e6-1e2d3c4b5a69",
        "duration_ms": 5321,
        "device": "desktop",
        "country": "DE",
        "utm_campaign": "spring_launch"
    })
}

/// The body of `POST /v1/events`.
pub fn single_event_body() -> Vec<u8> {
    event(&event_data()).to_string().into_bytes()
}

/// The body of `POST /v1/events/batch` with `events` events.
pub fn batch_body(events: usize) -> Vec<u8> {
    let one = event(&event_data());
    json!({ "events": vec![one; events] })
        .to_string()
        .into_bytes()
}

fn event(data: &Value) -> Value {
    json!({ "event_type": EVENT_TYPE, "source": SOURCE, "version": VERSION, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_about_two_hundred_bytes() {
        let size = event_data().to_string().len();
        assert!((180..=260).contains(&size), "{size} bytes");
    }

    #[test]
    fn data_survives_pgbench_variable_substitution() {
        // pgbench replaces `:name` in a script; a colon before a letter or `_` would be eaten.
        let text = event_data().to_string();
        let eaten = text
            .match_indices(':')
            .any(|(i, _)| text[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
        assert!(!eaten, "{text}");
    }
}
