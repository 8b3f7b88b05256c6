//! Request extractors that answer bad input in the documented problem+json format.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body: `application/json` (or `+json`) content type, within the body limit, valid
/// UTF-8 JSON of the expected shape; anything else is a 4xx problem.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: no body (or only whitespace) is `None`, anything else must be valid
/// JSON as for [`ApiJson`].
pub struct MaybeJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for MaybeJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::invalid("the request body could not be read")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        parse_json(&bytes).map(|value| MaybeJson(Some(value)))
    }
}

/// The raw bytes of a JSON body, after the same content-type and size checks as [`ApiJson`];
/// for handlers that need the exact bytes (idempotency fingerprints) before parsing.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        json_bytes(req, state).await.map(JsonBytes)
    }
}

async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let is_json = content_type.as_deref().is_some_and(|ct| {
        ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
    });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::invalid("the request body could not be read")
        }
    })
}

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        "the request body is larger than this endpoint accepts",
    )
}

/// Parses JSON, describing what is wrong without echoing the values sent (which may be
/// secrets).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!(
                    "malformed JSON: {}",
                    describe_without_values(&e.to_string())
                )
            }
            _ => format!(
                "invalid request: {}",
                describe_without_values(&e.to_string())
            ),
        };
        ApiError::invalid(detail)
    })
}

/// What serde writes before a value it quotes in backticks (`invalid type: integer \`5\``,
/// `unknown variant \`x\``); field names (`unknown field \`x\``) are kept: they help and are not
/// data.
const BACKTICKED_VALUES: [&str; 4] = [
    "integer `",
    "floating point `",
    "character `",
    "unknown variant `",
];

/// serde quotes offending values (`invalid type: string "hunter2", expected ...`, `integer
/// \`5\``); keep the explanation, drop the value.
pub fn describe_without_values(message: &str) -> String {
    let mut text = describe_without_strings(message);
    for marker in BACKTICKED_VALUES {
        text = drop_backticked(&text, marker);
    }
    text
}

/// `message` with every backtick-quoted value after `marker` removed.
fn drop_backticked(message: &str, marker: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(marker) {
        out.push_str(&rest[..start]);
        out.push_str(marker.trim_end_matches(" `"));
        let after = &rest[start + marker.len()..];
        rest = after.find('`').map_or("", |end| &after[end + 1..]);
    }
    out.push_str(rest);
    out
}

fn describe_without_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("string \"") {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        let after = &rest[start + "string \"".len()..];
        rest = match after.find("\", expected") {
            Some(end) => &after[end + 1..],
            None => match after.rfind('"') {
                Some(end) => &after[end + 1..],
                None => "",
            },
        };
    }
    out.push_str(rest);
    out
}

/// Query parameters, with problems answered as 400 problem+json.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_query(query).map(ApiQuery)
    }
}

/// Query parameters as [`ApiQuery`] reads them.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::invalid("the query string is malformed"))?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        ApiError::invalid(format!(
            "invalid query parameters: {}",
            describe_without_values(&e.body_text())
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_never_echo_string_values() {
        let err = parse_json::<std::collections::HashMap<String, u32>>(br#"{"pw": "hunter2"}"#)
            .unwrap_err();
        assert!(!err.detail.contains("hunter2"), "{}", err.detail);
        assert!(err.detail.contains("expected u32"), "{}", err.detail);
    }

    #[test]
    fn error_messages_never_echo_numbers_either() {
        // Found by the `batch_body` fuzz target: a bare number came back in the message.
        let err = parse_json::<Vec<u8>>(b"-555555555555555550").unwrap_err();
        assert!(!err.detail.contains("555555"), "{}", err.detail);
        assert!(err.detail.contains("integer"), "{}", err.detail);
        let err = parse_json::<Vec<u8>>(b"[1.25]").unwrap_err();
        assert!(!err.detail.contains("1.25"), "{}", err.detail);
        let err = parse_json::<epai_domain::EventInput>(br#"{"colour": 1}"#).unwrap_err();
        assert!(
            err.detail.contains("unknown field `colour`"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn malformed_and_deeply_nested_json_are_client_errors() {
        let err = parse_json::<serde_json::Value>(b"{\"a\": ").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.detail.starts_with("malformed JSON"));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            parse_json::<serde_json::Value>(deep.as_bytes())
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_json::<serde_json::Value>(b"{\"a\": \"\xff\"}")
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
    }
}
