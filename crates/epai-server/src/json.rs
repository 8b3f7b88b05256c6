//! JSON request bodies whose every rejection is a problem+json `ApiError`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::{ApiError, ErrorCode};

/// Like `axum::Json`, but malformed input answers in the documented error format, and the
/// error never quotes the body back (it may hold a password).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidRequest,
                "send the body as JSON with \"Content-Type: application/json\"",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "the request body is too large",
                )
            } else {
                ApiError::invalid_request("the request body could not be read")
            }
        })?;
        serde_json::from_slice(&body)
            .map(ApiJson)
            .map_err(|e| ApiError::invalid_request(describe(&e)))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"))
}

/// What was wrong with the body, without quoting any of its values.
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            "the request body is not valid JSON".to_owned()
        }
        Category::Data => {
            let message = error.to_string();
            // serde names the field and nothing else in this one message; every other data
            // error may quote the offending value.
            let missing = message
                .split_once("missing field `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(field, _)| field);
            match missing {
                Some(field) => format!("the request body is missing the field `{field}`"),
                None => "a field of the request body has the wrong type or value".to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only failures to deserialize are tested")]
    struct Login {
        email: String,
        password: String,
    }

    fn describe_body(body: &str) -> String {
        describe(&serde_json::from_str::<Login>(body).unwrap_err())
    }

    #[test]
    fn errors_name_missing_fields_but_never_quote_values() {
        assert_eq!(
            describe_body(r#"{"email": "a@b.test"}"#),
            "the request body is missing the field `password`"
        );
        let wrong_type = describe_body(r#"{"email": "a@b.test", "password": 12345678901}"#);
        assert!(!wrong_type.contains("12345678901"), "{wrong_type}");
        let as_string = describe_body(r#"{"email": ["hunter2-secret"], "password": "x"}"#);
        assert!(!as_string.contains("hunter2"), "{as_string}");
        assert_eq!(
            describe_body("{not json"),
            "the request body is not valid JSON"
        );
    }
}
