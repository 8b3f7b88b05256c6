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
    // Only long inputs: a short one (say `a`) appears in any message by chance.
    if input.len() >= 12
        && let Ok(text) = std::str::from_utf8(input)
    {
        assert!(
            !error.detail.contains(text),
            "the error quotes the input: {}",
            error.detail
        );
    }
}

/// The text of `data` when it is UTF-8; header and URL parsers see nothing else.
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
