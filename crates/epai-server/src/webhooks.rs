//! Insight webhooks (`/v1/webhooks`): partners register endpoints that receive new and updated
//! insights, signed per Standard Webhooks, and follow the deliveries. Each operation runs in a
//! transaction scoped to the caller's account, so row-level security decides which webhooks
//! exist; another partner's webhook id answers 404 and is recorded as a security event.
//!
//! The functions below the handlers are shared with the portal's webhook pages.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use epai_domain::{AuthUserId, WebhookEventType, WebhookMessage};
use epai_store::{DeliveryRecord, NewWebhook, SecurityEvent, WebhookChange, WebhookRecord};
use epai_webhooks::{SecretCipher, SigningSecret, UrlPolicy, UrlRefusal};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::caller::AccountCaller;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::extract::{ApiJson, ApiQuery, MaybeJson};
use crate::observe::ClientInfo;
use crate::reads::{decode_cursor, encode_cursor};

/// How webhooks are managed on this server.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Seals signing secrets for the database (the delivery workers open them).
    pub cipher: Arc<SecretCipher>,
    /// Which URLs webhooks may have.
    pub policy: UrlPolicy,
    /// How long a rotated-out secret keeps signing, unless a rotation asks for another period.
    pub secret_grace: Duration,
    pub max_per_partner: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            cipher: Arc::new(SecretCipher::generate()),
            policy: UrlPolicy::default(),
            secret_grace: Duration::from_secs(24 * 3600),
            max_per_partner: 20,
        }
    }
}

/// Longest grace period a rotation may ask for: a week.
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;
const MAX_DESCRIPTION_CHARS: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST messages: `https://` (plain `http://` only to hosts the operator allows),
    /// at most 2048 characters, no user name or password, on a public address.
    url: String,
    /// Any of `insight.created`, `insight.updated`, `api_key.expiring`; default the two insight
    /// events.
    event_types: Option<Vec<String>>,
    /// Up to 200 characters.
    description: Option<String>,
    /// Default `true`.
    enabled: Option<bool>,
}

/// Present with `null` is `Some(None)`: the field is cleared.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub(crate) url: Option<String>,
    pub(crate) event_types: Option<Vec<String>>,
    /// `null` removes the description.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub(crate) description: Option<Option<String>>,
    /// Turning a webhook on again also clears the failure streak that switched it off.
    pub(crate) enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the replaced secret keeps signing beside the new one, 0 to 604800 seconds
    /// (default: the server's, 24 hours unless configured otherwise).
    #[schema(minimum = 0, maximum = 604_800)]
    grace_seconds: Option<u64>,
}

/// A webhook and its signing secret, which is shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    webhook: WebhookRecord,
    /// `whsec_` and base64: the HMAC key of the signatures. Stored only sealed; it cannot be
    /// shown again (rotate it to get a new one).
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    data: Vec<WebhookRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    data: Vec<DeliveryRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn client_of(client: Option<axum::Extension<ClientInfo>>) -> Option<ClientInfo> {
    client.map(|c| c.0)
}

/// The partner's webhooks, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    security(("apikey" = []), ("session" = [])),
    responses((status = 200, body = WebhookList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: AccountCaller,
) -> Result<Json<WebhookList>, ApiError> {
    let data = state
        .store
        .as_user(caller.user_id, async |t| t.webhooks().await)
        .await?;
    Ok(Json(WebhookList { data }))
}

/// Registers an endpoint. Its URL must be `https` and resolve only to public addresses (unless
/// the operator allows otherwise); the signing secret is in this response only.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    security(("apikey" = []), ("session" = [])),
    responses((status = 201, body = WebhookWithSecret), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let (webhook, secret) = create(&state, caller.user_id, client_of(client), body.into()).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            webhook,
            secret: secret.expose(),
        }),
    ))
}

/// Changes a webhook's URL, event types, description or whether it is on.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    params(("id" = String, Path, description = "Webhook id")),
    security(("apikey" = []), ("session" = [])),
    responses((status = 200, body = WebhookRecord), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookRecord>, ApiError> {
    let id = webhook_id(&id)?;
    Ok(Json(
        update(&state, caller.user_id, client_of(client), id, body).await?,
    ))
}

/// Deletes a webhook and its delivery history; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    security(("apikey" = []), ("session" = [])),
    responses((status = 204, description = "Deleted"), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = webhook_id(&id)?;
    delete(&state, caller.user_id, client_of(client), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret; the new one is in this response only. Until the grace period
/// ends, messages carry a signature with each secret, so receivers can switch without losing
/// any.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    request_body(content = Option<RotateSecret>, description = "Optional"),
    params(("id" = String, Path, description = "Webhook id")),
    security(("apikey" = []), ("session" = [])),
    responses((status = 200, body = WebhookWithSecret), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    MaybeJson(body): MaybeJson<RotateSecret>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let id = webhook_id(&id)?;
    let grace = match body.and_then(|b| b.grace_seconds) {
        Some(seconds) if seconds > MAX_GRACE_SECONDS => {
            return Err(ApiError::invalid(
                "grace_seconds must be between 0 and 604800",
            ));
        }
        Some(seconds) => Duration::from_secs(seconds),
        None => state.settings.webhooks.secret_grace,
    };
    let (webhook, secret) = rotate(&state, caller.user_id, client_of(client), id, grace).await?;
    Ok(Json(WebhookWithSecret {
        webhook,
        secret: secret.expose(),
    }))
}

/// Queues a `webhook.test` message for the webhook (sent once, even when it is off); follow it
/// in the deliveries.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    security(("apikey" = []), ("session" = [])),
    responses((status = 202, body = DeliveryRecord), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn test_webhook(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryRecord>), ApiError> {
    let id = webhook_id(&id)?;
    let delivery = send_test(&state, caller.user_id, client_of(client), id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// The webhook's deliveries, newest first: status, attempts, the last response code and
/// latency, and every attempt.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveriesQuery),
    security(("apikey" = []), ("session" = [])),
    responses((status = 200, body = DeliveryPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let id = webhook_id(&id)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 100"));
    }
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let data = deliveries(&state, caller.user_id, client_of(client), id, before, limit).await?;
    let next_cursor = (data.len() as i64 == limit)
        .then(|| data.last().map(|d| encode_cursor(d.created_at, d.id)))
        .flatten();
    Ok(Json(DeliveryPage { data, next_cursor }))
}

/// A webhook id from a path: anything that is not a UUID names no webhook.
pub fn webhook_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::not_found("no webhook with this id")
}

/// What a partner asks for when creating a webhook, before it is checked.
pub(crate) struct WebhookInput {
    pub(crate) url: String,
    pub(crate) event_types: Option<Vec<String>>,
    pub(crate) description: Option<String>,
    pub(crate) enabled: Option<bool>,
}

impl From<CreateWebhook> for WebhookInput {
    fn from(body: CreateWebhook) -> Self {
        Self {
            url: body.url,
            event_types: body.event_types,
            description: body.description,
            enabled: body.enabled,
        }
    }
}

fn field_error(field: &str, message: impl Into<String>) -> serde_json::Value {
    json!([{ "field": field, "message": message.into() }])
}

fn event_types(names: &[String]) -> Result<Vec<WebhookEventType>, ApiError> {
    let mut types = names
        .iter()
        .map(|name| WebhookEventType::parse_subscribable(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ApiError::invalid("event_types names an unknown event type")
                .with_errors(field_error("event_types", e.to_string()))
        })?;
    types.sort();
    types.dedup();
    if types.is_empty() {
        return Err(
            ApiError::invalid("event_types must name at least one event type")
                .with_errors(field_error("event_types", "at least one event type")),
        );
    }
    Ok(types)
}

fn description(text: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "description must be at most 200 characters without control characters",
        )
        .with_errors(field_error(
            "description",
            "at most 200 printable characters",
        )));
    }
    Ok(Some(text))
}

/// The URL as it will be stored, once the policy accepts it; a refused private target is a
/// security event (it is what a server-side request forgery attempt looks like).
async fn vetted_url(
    state: &AppState,
    user: AuthUserId,
    client: Option<&ClientInfo>,
    raw: &str,
) -> Result<String, ApiError> {
    match state.settings.webhooks.policy.vet(raw).await {
        Ok(url) => Ok(url.to_string()),
        Err(refusal) => {
            if refusal == UrlRefusal::NonPublicAddress {
                let partner = own_partner(state, user).await;
                let host = state
                    .settings
                    .webhooks
                    .policy
                    .parse(raw)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned));
                record(
                    state,
                    "webhook_url_refused",
                    partner,
                    user,
                    client,
                    json!({ "host": host, "reason": refusal.to_string() }),
                );
            }
            let code = if refusal == UrlRefusal::Malformed {
                ErrorCode::InvalidRequest
            } else {
                ErrorCode::UrlNotAllowed
            };
            Err(
                ApiError::new(StatusCode::BAD_REQUEST, code, refusal.to_string())
                    .with_errors(field_error("url", refusal.to_string())),
            )
        }
    }
}

async fn own_partner(state: &AppState, user: AuthUserId) -> Option<epai_domain::PartnerId> {
    state
        .store
        .as_user(user, async |t| t.partner().await)
        .await
        .ok()
        .map(|p| p.id)
}

fn record(
    state: &AppState,
    event_type: &str,
    partner: Option<epai_domain::PartnerId>,
    user: AuthUserId,
    client: Option<&ClientInfo>,
    details: serde_json::Value,
) {
    state.activity.security(SecurityEvent {
        event_type: event_type.to_owned(),
        partner_id: partner,
        user_id: Some(user),
        ip_address: client.and_then(ClientInfo::ip_text),
        user_agent: client.and_then(|c| c.user_agent.clone()),
        details,
        created_at: Utc::now(),
    });
}

/// 404 for a webhook the caller cannot see; a `cross_tenant_access` security event when it is
/// another partner's.
async fn missing(
    state: &AppState,
    user: AuthUserId,
    client: Option<&ClientInfo>,
    id: Uuid,
) -> ApiError {
    let owner = state
        .store
        .as_service_role(async |s| s.webhook_owner(id).await)
        .await;
    let partner = own_partner(state, user).await;
    if let Ok(Some(owner)) = owner
        && Some(owner) != partner
    {
        record(
            state,
            "cross_tenant_access",
            partner,
            user,
            client,
            json!({ "resource": "webhook", "id": id }),
        );
    }
    not_found()
}

/// One of the caller's webhooks.
pub(crate) async fn find(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
) -> Result<WebhookRecord, ApiError> {
    match state
        .store
        .as_user(user, async |t| t.webhook(id).await)
        .await?
    {
        Some(webhook) => Ok(webhook),
        None => Err(missing(state, user, client.as_ref(), id).await),
    }
}

pub(crate) async fn create(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    input: WebhookInput,
) -> Result<(WebhookRecord, SigningSecret), ApiError> {
    let event_types = match input.event_types {
        Some(names) => event_types(&names)?,
        None => WebhookEventType::DEFAULT.to_vec(),
    };
    let description = description(input.description)?;
    let url = vetted_url(state, user, client.as_ref(), &input.url).await?;
    let id = Uuid::new_v4();
    let secret = SigningSecret::generate();
    let new = NewWebhook {
        id,
        url,
        description,
        event_types,
        enabled: input.enabled.unwrap_or(true),
        secret: state.settings.webhooks.cipher.seal(id, &secret),
    };
    let limit = state.settings.webhooks.max_per_partner;
    let created = state
        .store
        .as_user(user, async |t| {
            t.create_webhook(&new, limit, Utc::now()).await
        })
        .await
        .map_err(|e| match e {
            epai_store::StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::WebhookLimit,
                format!("a partner may have at most {limit} webhooks; delete one first"),
            ),
            other => other.into(),
        })?;
    Ok((created, secret))
}

pub(crate) async fn update(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
    body: UpdateWebhook,
) -> Result<WebhookRecord, ApiError> {
    let event_types = body.event_types.as_deref().map(event_types).transpose()?;
    let description = body.description.map(description).transpose()?;
    let url = match &body.url {
        Some(raw) => Some(vetted_url(state, user, client.as_ref(), raw).await?),
        None => None,
    };
    let change = WebhookChange {
        url,
        description,
        event_types,
        enabled: body.enabled,
    };
    match state
        .store
        .as_user(user, async |t| {
            t.update_webhook(id, &change, Utc::now()).await
        })
        .await?
    {
        Some(webhook) => Ok(webhook),
        None => Err(missing(state, user, client.as_ref(), id).await),
    }
}

pub(crate) async fn delete(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
) -> Result<(), ApiError> {
    let deleted = state
        .store
        .as_user(user, async |t| t.delete_webhook(id).await)
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(missing(state, user, client.as_ref(), id).await)
    }
}

pub(crate) async fn rotate(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
    grace: Duration,
) -> Result<(WebhookRecord, SigningSecret), ApiError> {
    let secret = SigningSecret::generate();
    let sealed = state.settings.webhooks.cipher.seal(id, &secret);
    let now = Utc::now();
    let previous_until = epai_store::queue::after(now, grace);
    let rotated = state
        .store
        .as_user(user, async |t| {
            let webhook = t
                .rotate_webhook_secret(id, &sealed, previous_until, now)
                .await?;
            Ok((webhook, t.partner().await.ok().map(|p| p.id)))
        })
        .await?;
    match rotated {
        (Some(webhook), partner) => {
            record(
                state,
                "webhook_secret_rotated",
                partner,
                user,
                client.as_ref(),
                json!({ "webhook_id": id, "grace_seconds": grace.as_secs() }),
            );
            Ok((webhook, secret))
        }
        (None, _) => Err(missing(state, user, client.as_ref(), id).await),
    }
}

pub(crate) async fn send_test(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
) -> Result<DeliveryRecord, ApiError> {
    let (webhook, partner) = state
        .store
        .as_user(user, async |t| {
            Ok((t.webhook(id).await?, t.partner().await?))
        })
        .await?;
    if webhook.is_none() {
        return Err(missing(state, user, client.as_ref(), id).await);
    }
    let now = Utc::now();
    let message = WebhookMessage::new(
        WebhookEventType::Test,
        now,
        json!({
            "webhook_id": id,
            "message": "A test message from EPAI: this endpoint receives webhooks and can verify their signatures.",
        }),
    );
    state
        .store
        .as_service_role(async |s| s.enqueue_test_delivery(partner.id, id, &message, now).await)
        .await?
        .ok_or_else(not_found)
}

pub(crate) async fn deliveries(
    state: &AppState,
    user: AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
    before: Option<(chrono::DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, ApiError> {
    let found = state
        .store
        .as_user(user, async |t| {
            if t.webhook(id).await?.is_none() {
                return Ok(None);
            }
            Ok(Some(t.webhook_deliveries(id, before, limit).await?))
        })
        .await?;
    match found {
        Some(deliveries) => Ok(deliveries),
        None => Err(missing(state, user, client.as_ref(), id).await),
    }
}
