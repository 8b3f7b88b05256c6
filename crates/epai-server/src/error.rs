use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use epai_store::StoreError;
use serde::Serialize;

/// The documented error codes (DESIGN.md §3), carried in every problem body as `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ErrorCode {
    #[serde(rename = "auth/missing-api-key")]
    MissingApiKey,
    #[serde(rename = "auth/invalid-api-key")]
    InvalidApiKey,
    #[serde(rename = "auth/expired-api-key")]
    ExpiredApiKey,
    #[serde(rename = "auth/missing-session")]
    MissingSession,
    #[serde(rename = "auth/invalid-session")]
    InvalidSession,
    #[serde(rename = "auth/invalid-credentials")]
    InvalidCredentials,
    #[serde(rename = "auth/invalid-refresh-token")]
    InvalidRefreshToken,
    #[serde(rename = "auth/account-exists")]
    AccountExists,
    #[serde(rename = "rate-limit/exceeded")]
    RateLimitExceeded,
    #[serde(rename = "validation/invalid-request")]
    InvalidRequest,
    #[serde(rename = "not-found")]
    NotFound,
    #[serde(rename = "method-not-allowed")]
    MethodNotAllowed,
    #[serde(rename = "payload/too-large")]
    PayloadTooLarge,
    #[serde(rename = "service/unavailable")]
    Unavailable,
    #[serde(rename = "internal")]
    Internal,
}

/// Every failure a handler can return; one `IntoResponse` turns it into RFC 9457 problem+json
/// with the original clients' `error: true` and `message` members.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, detail)
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, detail)
    }

    /// A failure that is a bug or an outage on our side; `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "an internal error occurred",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            detail,
        )
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: ErrorCode,
    error: bool,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code_text = serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let body = Problem {
            kind: format!("/problems/{code_text}"),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            error: true,
            message: &self.detail,
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => ApiError::not_found("the requested resource does not exist"),
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "an internal error occurred",
                )
            }
        }
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not support that method",
    )
}
