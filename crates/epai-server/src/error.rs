use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use epai_store::StoreError;
use serde::Serialize;
use serde_json::Value;

/// The documented error codes (DESIGN.md §3), carried in every problem body as `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ErrorCode {
    #[serde(rename = "auth/missing-api-key")]
    MissingApiKey,
    #[serde(rename = "auth/invalid-api-key")]
    InvalidApiKey,
    #[serde(rename = "auth/expired-api-key")]
    ExpiredApiKey,
    #[serde(rename = "auth/forbidden")]
    Forbidden,
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
    #[serde(rename = "validation/unsupported-media-type")]
    UnsupportedMediaType,
    #[serde(rename = "validation/url-not-allowed")]
    UrlNotAllowed,
    #[serde(rename = "webhook/limit-reached")]
    WebhookLimit,
    #[serde(rename = "idempotency/key-reused")]
    IdempotencyKeyReused,
    #[serde(rename = "not-found")]
    NotFound,
    #[serde(rename = "method-not-allowed")]
    MethodNotAllowed,
    #[serde(rename = "payload/too-large")]
    PayloadTooLarge,
    #[serde(rename = "service/timeout")]
    Timeout,
    #[serde(rename = "service/unavailable")]
    Unavailable,
    #[serde(rename = "internal")]
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingApiKey => "auth/missing-api-key",
            Self::InvalidApiKey => "auth/invalid-api-key",
            Self::ExpiredApiKey => "auth/expired-api-key",
            Self::Forbidden => "auth/forbidden",
            Self::MissingSession => "auth/missing-session",
            Self::InvalidSession => "auth/invalid-session",
            Self::InvalidCredentials => "auth/invalid-credentials",
            Self::InvalidRefreshToken => "auth/invalid-refresh-token",
            Self::AccountExists => "auth/account-exists",
            Self::RateLimitExceeded => "rate-limit/exceeded",
            Self::InvalidRequest => "validation/invalid-request",
            Self::UnsupportedMediaType => "validation/unsupported-media-type",
            Self::UrlNotAllowed => "validation/url-not-allowed",
            Self::WebhookLimit => "webhook/limit-reached",
            Self::IdempotencyKeyReused => "idempotency/key-reused",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::PayloadTooLarge => "payload/too-large",
            Self::Timeout => "service/timeout",
            Self::Unavailable => "service/unavailable",
            Self::Internal => "internal",
        }
    }
}

/// Every failure a handler can return; one `IntoResponse` turns it into RFC 9457 problem+json
/// with the original clients' `error: true` and `message` members.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
    /// Per-field or per-item problems (`[{index?, field, message}]`).
    pub errors: Option<Value>,
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: None,
            retry_after_seconds: None,
        }
    }

    pub fn with_errors(mut self, errors: Value) -> Self {
        self.errors = Some(errors);
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
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
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            detail,
        );
        error.retry_after_seconds = Some(5);
        error
    }
}

/// RFC 9457 problem details, with the original clients' `error` and `message` members.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// A stable machine-readable code such as `auth/invalid-api-key`.
    #[schema(value_type = String)]
    code: ErrorCode,
    /// Always `true`.
    error: bool,
    /// The same text as `detail`.
    message: String,
    /// Per-field or per-item problems, when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    errors: Option<Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("/problems/{}", self.code.as_str()),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            error: true,
            message: self.detail,
            errors: self.errors,
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => ApiError::not_found("the requested resource does not exist"),
            StoreError::Invalid(cause) => {
                // The store only sees values the server already validated; say what was wrong
                // without echoing data.
                tracing::info!(%cause, "database refused a value");
                ApiError::invalid("a value was refused by the database")
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::unavailable("the service is temporarily unavailable; retry shortly")
            }
            StoreError::Timeout(cause) => {
                tracing::warn!(%cause, "database statement timed out");
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Timeout,
                    "the database did not answer in time; retry shortly",
                );
                error.retry_after_seconds = Some(1);
                error
            }
            other => ApiError::internal(other),
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
