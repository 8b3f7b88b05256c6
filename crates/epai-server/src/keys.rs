//! The partner's API key as the portal manages it (session only): its status, and
//! regeneration, which shows the new key exactly once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use epai_store::{ApiKeyStatus, SecurityEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::MaybeJson;
use crate::observe::ClientInfo;
use crate::session::SessionUser;

#[derive(Serialize, ToSchema)]
pub struct NewApiKey {
    /// The key itself: shown only in this response, stored only as a SHA-256 hash.
    api_key: String,
    key_prefix: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

/// The current key's prefix and dates; the key itself is never retrievable.
#[utoipa::path(get, path = "/v1/api-key", tag = "keys", security(("session" = [])),
    responses((status = 200, body = ApiKeyStatus), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn status(
    State(state): State<AppState>,
    session: SessionUser,
) -> Result<Json<ApiKeyStatus>, ApiError> {
    state
        .store
        .as_user(session.user_id, async |t| t.api_key_status().await)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no API key yet; create one with POST /v1/api-key"))
}

/// Replaces the partner's key (`regenerate_api_key_for_partner`); the previous key stops
/// working after the configured grace period.
#[utoipa::path(post, path = "/v1/api-key", tag = "keys", security(("session" = [])),
    responses((status = 201, body = NewApiKey), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn regenerate(
    State(state): State<AppState>,
    session: SessionUser,
    client: Option<axum::Extension<ClientInfo>>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    let (key, status) = rotate(&state, &session, client.map(|c| c.0)).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKey {
            api_key: key,
            key_prefix: status.as_ref().and_then(|s| s.key_prefix.clone()),
            expires_at: status.and_then(|s| s.expires_at),
        }),
    ))
}

pub(crate) async fn rotate(
    state: &AppState,
    session: &SessionUser,
    client: Option<ClientInfo>,
) -> Result<(String, Option<ApiKeyStatus>), ApiError> {
    let (key, status, partner) = state
        .store
        .as_user(session.user_id, async |t| {
            let key = t.regenerate_api_key().await?;
            Ok((key, t.api_key_status().await?, t.partner().await?))
        })
        .await?;
    state.keys.forget_partner(partner.id);
    state.activity.security(SecurityEvent {
        event_type: "api_key_rotated".into(),
        partner_id: Some(partner.id),
        user_id: Some(session.user_id),
        ip_address: client.as_ref().and_then(ClientInfo::ip_text),
        user_agent: client.and_then(|c| c.user_agent),
        details: json!({ "key_prefix": status.as_ref().and_then(|s| s.key_prefix.clone()) }),
        created_at: Utc::now(),
    });
    Ok((key, status))
}

/// Original path `/api-key-manager` (GET): the key's metadata in the original shape, with
/// `apiKey: null` because a stored key can no longer be shown.
#[utoipa::path(get, path = "/api-key-manager", tag = "original paths", security(("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_status(
    State(state): State<AppState>,
    session: SessionUser,
) -> Result<Json<Value>, ApiError> {
    let status = state
        .store
        .as_user(session.user_id, async |t| t.api_key_status().await)
        .await?;
    Ok(Json(json!({
        "apiKey": null,
        "keyPrefix": status.as_ref().and_then(|s| s.key_prefix.clone()),
        "createdAt": status.as_ref().and_then(|s| s.created_at),
        "expiresAt": status.as_ref().and_then(|s| s.expires_at),
        "lastUsedAt": status.as_ref().and_then(|s| s.last_used_at),
    })))
}

/// Original path `/api-key-manager` (POST): a new key as `{"apiKey"}`.
#[utoipa::path(post, path = "/api-key-manager", tag = "original paths", security(("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_regenerate(
    State(state): State<AppState>,
    session: SessionUser,
    client: Option<axum::Extension<ClientInfo>>,
) -> Result<Json<Value>, ApiError> {
    let (key, _) = rotate(&state, &session, client.map(|c| c.0)).await?;
    Ok(Json(json!({ "apiKey": key })))
}

/// Original path `/get-usage-stats`: all-time totals.
#[utoipa::path(post, path = "/get-usage-stats", tag = "original paths", security(("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_usage_stats(
    State(state): State<AppState>,
    session: SessionUser,
) -> Result<Json<epai_store::UsageTotals>, ApiError> {
    Ok(Json(
        state
            .store
            .as_user(session.user_id, async |t| t.usage_totals().await)
            .await?,
    ))
}

#[derive(Deserialize, Default, ToSchema, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsPage {
    /// 0-based page.
    page: Option<i64>,
    /// Rows per page, 1 to 100 (default 20).
    page_size: Option<i64>,
}

/// Original path `/get-partner-logs`: request logs with masked bodies.
#[utoipa::path(post, path = "/get-partner-logs", tag = "original paths",
    request_body = LogsPage, security(("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_partner_logs(
    State(state): State<AppState>,
    session: SessionUser,
    MaybeJson(page): MaybeJson<LogsPage>,
) -> Result<Json<Value>, ApiError> {
    let page = page.unwrap_or_default();
    let size = page.page_size.unwrap_or(20);
    let number = page.page.unwrap_or(0);
    if !(1..=100).contains(&size) || !(0..=1_000_000).contains(&number) {
        return Err(ApiError::invalid(
            "page must not be negative and pageSize must be between 1 and 100",
        ));
    }
    let logs = state
        .store
        .as_user(session.user_id, async |t| {
            t.log_details(size, number * size).await
        })
        .await?;
    Ok(Json(json!({ "logs": logs })))
}
