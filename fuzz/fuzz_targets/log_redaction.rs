//! What of a request or response body reaches the `logs` table: never an API key, a webhook
//! secret, a JWT or a NUL character, whatever the body.
#![no_main]

use epai_server::parsing::{loggable_body, mask};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Every string and field name in `value`, unescaped (the JSON text of a control character,
/// `\u001e`, could spell `epai_` with what follows).
fn texts(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s}\n"),
        Value::Array(items) => items.iter().map(texts).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}\n{}", texts(v)))
            .collect(),
        _ => String::new(),
    }
}

fn no_secret_in(logged: &Value) {
    let text = texts(logged);
    assert!(
        !text.contains("epai_"),
        "an API key reached the log: {text}"
    );
    assert!(
        !text.contains("whsec_"),
        "a webhook secret reached the log: {text}"
    );
    let jwt_like = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .any(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3 && parts[0].starts_with("eyJ") && parts.iter().all(|p| !p.is_empty())
        });
    assert!(!jwt_like, "a JWT reached the log: {text}");
    // Walk the value: a literal `\u0000` typed by the client is text, not a NUL.
    assert!(!has_nul(logged), "a NUL character reached the log: {text}");
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(logged) = loggable_body(data, 4096) {
        let logged: Value = serde_json::from_str(logged.as_str()).expect("logged bodies are JSON");
        no_secret_in(&logged);
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        no_secret_in(&mask(&value));
    }
});
