//! Masking of secrets and capping of bodies before they are written to `logs`.

use epai_store::LoggedBody;
use serde_json::{Map, Value, json};

const MASK: &str = "[redacted]";

/// Parts of field names whose values are secrets, whatever they hold (lowercase).
const SECRET_FIELD_PARTS: [&str; 11] = [
    "password",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "authorization",
    "cookie",
    "refresh",
    "credential",
    "csrf",
];

/// How every credential EPAI issues begins, in lowercase: API keys, webhook signing secrets,
/// and JWTs (`eyJ`, the encoded `{"` of their header).
const CREDENTIAL_MARKERS: [&str; 3] = ["epai_", "whsec_", "eyj"];

/// Field names whose values are secrets, whatever they hold.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_FIELD_PARTS.iter().any(|part| name.contains(part))
}

/// Whether free text names a secret field anywhere (`"password": ...` in JSON that does not
/// parse), so the value next to it cannot be told apart and the whole text is withheld.
fn mentions_secret_field(text: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .any(|word| !word.is_empty() && is_secret_field(word))
}

/// Strings that look like credentials wherever they appear: API keys, webhook signing secrets
/// and JWTs.
fn looks_like_secret(text: &str) -> bool {
    // A JWT may sit inside other text (`session=eyJ...`): look at every run of the characters
    // a JWT is made of.
    text.contains("epai_")
        || text.contains("whsec_")
        || text
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .any(looks_like_jwt)
}

/// Whether masking could change `bytes`: they hold a secret field name or a credential marker
/// in any case, a NUL, or an escape (which could spell either). Bodies without any of those
/// are logged as they came.
fn may_need_masking(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return true;
    };
    if text.contains(['\\', '\0']) {
        return true;
    }
    let lowercase = text.to_ascii_lowercase();
    SECRET_FIELD_PARTS
        .iter()
        .chain(&CREDENTIAL_MARKERS)
        .any(|needle| lowercase.contains(needle))
}

fn looks_like_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A copy of `value` with secret fields and secret-looking strings masked, and NUL characters
/// (which PostgreSQL's jsonb cannot store) removed.
pub fn mask(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = if is_secret_field(k) && !v.is_null() {
                        Value::String(MASK.into())
                    } else {
                        mask(v)
                    };
                    // A credential may arrive as a field name too (`{"epai_...": 1}`).
                    let name = k.replace('\0', "");
                    let name = if looks_like_secret(&name) {
                        MASK.to_owned()
                    } else {
                        name
                    };
                    (name, masked)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        // NULs go first: removing them must not join the pieces of a key (`epa\0i_...`).
        Value::String(s) => {
            let text = s.replace('\0', "");
            if looks_like_secret(&text) {
                Value::String(MASK.into())
            } else {
                Value::String(text)
            }
        }
        other => other.clone(),
    }
}

/// What of a body goes into the log: masked JSON when it is JSON, else a masked text preview;
/// anything larger than `cap` bytes is replaced by a note of its size.
pub fn loggable_body(bytes: &[u8], cap: usize) -> Option<LoggedBody> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() > cap {
        return size_note(u64::try_from(bytes.len()).ok());
    }
    if !may_need_masking(bytes)
        && let Some(body) = LoggedBody::from_json_text(bytes)
    {
        return Some(body);
    }
    let logged = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => mask(&value),
        Err(_) => {
            if let Some(fields) = form_fields(bytes) {
                return Some(LoggedBody::from_value(&json!({ "form": mask(&fields) })));
            }
            let text = String::from_utf8_lossy(bytes).replace('\0', "");
            let preview = if looks_like_secret(&text) || mentions_secret_field(&text) {
                MASK.to_owned()
            } else {
                text
            };
            json!({ "unparsed": preview })
        }
    };
    Some(LoggedBody::from_value(&logged))
}

/// A body logged by its size only, when it has one (`None` for an empty or streamed body).
pub fn size_note(bytes: Option<u64>) -> Option<LoggedBody> {
    bytes
        .filter(|&n| n > 0)
        .map(|n| LoggedBody::from_value(&json!({ "truncated": true, "bytes": n })))
}

/// A URL-encoded form body (`email=a%40b.c&password=...`, what the portal's forms post) as an
/// object of its fields, so that secret fields are masked by name as in JSON.
fn form_fields(bytes: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok()?;
    let is_form = text.split('&').all(|pair| {
        pair.split_once('=')
            .is_some_and(|(name, _)| !name.is_empty())
    }) && !text.chars().any(char::is_whitespace);
    if !is_form {
        return None;
    }
    let fields = form_urlencoded::parse(bytes)
        .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
        .collect::<Map<_, _>>();
    Some(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_and_credential_strings_are_masked() {
        let masked = mask(&json!({
            "email": "a@b.c",
            "password": "hunter2",
            "nested": {"refresh_token": "abc", "note": "key epai_abcdefghijklmnopqrstuvwxyz012345"},
            "list": ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "plain"],
            "note": "session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl;path=/",
            "webhook": {"signing": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        }));
        let text = masked.to_string();
        for secret in ["hunter2", "epai_abc", "eyJhbGci", "\"abc\"", "whsec_"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(masked["email"], "a@b.c");
        assert_eq!(masked["list"][1], "plain");
    }

    #[test]
    fn form_bodies_are_logged_field_by_field_with_secrets_masked() {
        let logged = logged(
            b"email=ops%40acme.test&password=hunter2%21&csrf=abc.def&name=Acme+Events",
            4096,
        )
        .unwrap();
        assert_eq!(
            logged,
            json!({"form": {
                "email": "ops@acme.test",
                "password": MASK,
                "csrf": MASK,
                "name": "Acme Events",
            }})
        );
        assert!(!logged.to_string().contains("hunter2"));
    }

    #[test]
    fn text_that_names_a_secret_field_is_withheld() {
        let truncated = br#"{"email": "a@b.c", "password": "hunter2""#;
        assert_eq!(logged(truncated, 4096), Some(json!({"unparsed": MASK})));
        assert_eq!(
            logged(b"plain words, nothing hidden", 4096),
            Some(json!({"unparsed": "plain words, nothing hidden"}))
        );
    }

    #[test]
    fn field_names_that_hold_credentials_are_masked_too() {
        // Found by the `log_redaction` fuzz target: a form field named with a webhook secret.
        let logged = logged(b"emwhsec_ail=a%t0b.c&csrf=abc", 4096).unwrap();
        assert!(!logged.to_string().contains("whsec_"), "{logged}");
        let masked = mask(&json!({"epai_AbCdEfGhIjKlMnOpQrStUvWxYz012-_9": 1, "ok": 2}));
        assert_eq!(masked, json!({MASK: 1, "ok": 2}));
        // Also found by it: a key split by NUL characters, which are removed before storing.
        let split = mask(&json!({"note": "epa\u{0}i_AbCdEf", "epa\u{0}i_x": 1}));
        assert!(!split.to_string().contains("epai_"), "{split}");
    }

    #[test]
    fn nul_characters_never_reach_the_log() {
        let masked = mask(&json!({"a\u{0}b": "c\u{0}d"}));
        assert_eq!(masked, json!({"ab": "cd"}));
    }

    fn logged(bytes: &[u8], cap: usize) -> Option<Value> {
        loggable_body(bytes, cap).map(|body| serde_json::from_str(body.as_str()).unwrap())
    }

    #[test]
    fn large_bodies_are_summarised_and_text_is_kept_as_text() {
        assert_eq!(
            logged(&[b'x'; 100], 10),
            Some(json!({"truncated": true, "bytes": 100}))
        );
        assert_eq!(
            logged(b"not json", 100),
            Some(json!({"unparsed": "not json"}))
        );
        assert_eq!(logged(b"", 100), None);
    }

    #[test]
    fn bodies_without_anything_to_mask_are_logged_as_they_came() {
        let body = br#"{"event_type":"page_view", "data": {"url": "/pricing", "n": 1.50}}"#;
        assert_eq!(loggable_body(body, 1000).unwrap().as_str().as_bytes(), body);
    }

    #[test]
    fn secrets_are_masked_however_the_body_spells_them() {
        for body in [
            r#"{"Password": "hunter2"}"#,
            r#"{"pass\u0077ord": "hunter2"}"#,
            r#"{"apiKey": "hunter2"}"#,
            r#"{"note": "\u0065pai_hunter2"}"#,
            r#"["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.hunter2"]"#,
        ] {
            let text = loggable_body(body.as_bytes(), 1000).unwrap();
            assert!(
                !text.as_str().contains("hunter2"),
                "{body} logged as {text:?}"
            );
        }
        assert_eq!(
            logged(br#"{"a\u0000b": 1}"#, 1000),
            Some(json!({"ab": 1})),
            "NUL characters are removed"
        );
        assert_eq!(
            logged(b"a=1&b", 100),
            Some(json!({"unparsed": "a=1&b"})),
            "not every part is a field: not a form"
        );
        assert_eq!(logged(b"", 100), None);
    }
}
