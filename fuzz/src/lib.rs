//! What the fuzz targets share: a fixed clock and the checks every parser's errors must pass.

use chrono::{DateTime, Utc};
use epai_server::ApiError;

/// The instant the targets validate against, so a crash reproduces whatever the day.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).expect("a valid instant")
}

/// Bad input is the client's fault: a 4xx whose text never carries the input back.
pub fn assert_client_error(error: &ApiError, input: &[u8]) {
    assert!(
        error.status.is_client_error(),
        "{} for bad input: {}",
        error.status,
        error.detail
    );
    // Values the client sent: JSON strings that are not field names, and long digit runs.
    // Raw text is not checked: fixed messages are echoed back by a fuzzer often enough that
    // finding one proves nothing.
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    // Field names may be named back (`unknown field \`x\``), and plain words may be a fixed
    // message the fuzzer learnt: only values with a digit or a symbol prove an echo.
    let telling = |value: &str| {
        value
            .chars()
            .any(|c| c.is_ascii_digit() || "#$%&@^~|<>{}[]".contains(c))
    };
    let detail = without_field_names(&error.detail);
    for value in sent_values(text).into_iter().filter(|value| telling(value)) {
        assert!(
            !detail.contains(value),
            "the error quotes the value {value:?}: {}",
            error.detail
        );
    }
}

/// `detail` without the field names serde repeats (`unknown field \`x\``).
pub fn without_field_names(detail: &str) -> String {
    let mut out = String::new();
    let mut rest = detail;
    while let Some(start) = rest.find("unknown field `") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "unknown field `".len()..];
        rest = after.find('`').map_or("", |end| &after[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// The JSON string values (not field names) and digit runs of at least 12 characters in `text`.
fn sent_values(text: &str) -> Vec<&str> {
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let value = &after[..close];
        let next = after[close + 1..].trim_start();
        if value.len() >= 12 && !value.contains('\\') && !next.starts_with(':') {
            values.push(value);
        }
        rest = &after[close + 1..];
    }
    values.extend(
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|digits| digits.len() >= 12),
    );
    values
}

/// The text of `data` when it is UTF-8; header and URL parsers see nothing else.
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
