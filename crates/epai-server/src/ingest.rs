//! Event ingestion: `POST /v1/events`, `POST /v1/events/batch` and the original `/ingest`
//! paths. A 2xx answer means the events are committed.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use epai_domain::{EventInput, EventLimits, FieldError, PartnerId, ValidEvent};
use epai_store::{IdempotencyClaim, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::PartnerCaller;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::extract::{JsonBytes, describe_without_values, parse_json};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAY: HeaderName = HeaderName::from_static("idempotent-replayed");

fn stored_event(partner: PartnerId, event: ValidEvent) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        partner_id: partner,
        event_type: event.event_type.as_str().to_owned(),
        data: event.data.into(),
        source: event.source,
        version: event.version,
        metadata: event.metadata.map(Into::into),
        occurred_at: event.occurred_at,
        created_at: None,
    }
}

fn field_errors(errors: &[FieldError], index: Option<usize>) -> Vec<Value> {
    errors
        .iter()
        .map(|e| match index {
            Some(i) => json!({ "index": i, "field": e.field, "message": e.message }),
            None => json!({ "field": e.field, "message": e.message }),
        })
        .collect()
}

fn validation_failed(detail: &str, errors: Vec<Value>) -> ApiError {
    ApiError::invalid(detail).with_errors(Value::Array(errors))
}

/// One event as the request carried it.
pub enum EventBody {
    /// Read straight from the bytes: the common case, and the cheap one.
    Input(EventInput),
    /// Any JSON, still to be checked against the `EventInput` shape.
    Json(Value),
}

impl EventBody {
    /// Well-formed events are read in one pass; anything else is parsed as JSON first, so that
    /// malformed JSON and each wrong field get their own answers.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice(bytes) {
            Ok(input) => Ok(Self::Input(input)),
            Err(_) => parse_json(bytes).map(Self::Json),
        }
    }
}

/// Validates one event body (`EventInput` shape); the errors name their fields (and `index`
/// within a batch).
pub fn one_event(
    body: EventBody,
    now: DateTime<Utc>,
    limits: &EventLimits,
    index: Option<usize>,
) -> Result<ValidEvent, Vec<Value>> {
    let input: EventInput = match body {
        EventBody::Input(input) => input,
        EventBody::Json(body) => match serde_json::from_value(body) {
            Ok(input) => input,
            Err(e) => {
                let message = describe_without_values(&e.to_string());
                return Err(field_errors(&[FieldError::new("(event)", message)], index));
            }
        },
    };
    input
        .validate(now, limits)
        .map_err(|errors| field_errors(&errors, index))
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

/// Stores `events` and answers `(status, body)`, once per idempotency key when one is given.
async fn store_events(
    state: &AppState,
    partner: PartnerId,
    idempotency: Option<(String, String)>,
    events: Vec<NewEvent>,
    status: StatusCode,
    body: Value,
) -> Result<Response, ApiError> {
    let Some((key, fingerprint)) = idempotency else {
        state.ingest.write(events).await?;
        state.reads.events_stored(partner);
        return Ok((status, Json(body)).into_response());
    };
    let claim = state
        .store
        .as_service_role(async |service| {
            let claim = service
                .claim_idempotency(partner, &key, &fingerprint)
                .await?;
            if claim == IdempotencyClaim::Claimed {
                service.insert_events(&events).await?;
                service
                    .complete_idempotency(partner, &key, status.as_u16(), &body)
                    .await?;
            }
            Ok(claim)
        })
        .await?;
    match claim {
        IdempotencyClaim::Claimed => {
            state.reads.events_stored(partner);
            Ok((status, Json(body)).into_response())
        }
        IdempotencyClaim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, Json(body)).into_response();
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAY, HeaderValue::from_static("true"));
            Ok(response)
        }
        IdempotencyClaim::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different request",
        )),
    }
}

fn fingerprint(path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_fingerprint(key: Option<String>, path: &str, body: &[u8]) -> Option<(String, String)> {
    key.map(|k| (k, fingerprint(path, body)))
}

#[derive(Serialize, ToSchema)]
pub struct EventAccepted {
    /// The stored event's id.
    id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct BatchAccepted {
    accepted: usize,
    /// Ids of the stored events, in request order.
    ids: Vec<Uuid>,
}

/// The body of `POST /v1/events/batch`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the body for the spec; the handler parses items one by one
pub struct BatchRequest {
    /// 1 to 1000 events (configurable), 5 MiB in all.
    events: Vec<EventInput>,
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Stores one event; a 202 means it is committed. With `Idempotency-Key`, a repeat returns the
/// first answer and stores nothing.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    security(("apikey" = [])),
    responses((status = 202, body = EventAccepted), (status = "4XX", body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn post_event(
    State(state): State<AppState>,
    caller: PartnerCaller,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let body = EventBody::parse(&bytes)?;
    ingest_one(
        &state,
        &caller,
        &headers,
        (&bytes, "/v1/events"),
        body,
        StatusCode::ACCEPTED,
        |id| to_json(&EventAccepted { id }),
    )
    .await
}

/// Validates and stores one event, answering `status` with `answer(id)` (once per
/// idempotency key). The idempotency fingerprint covers the raw body and the path.
async fn ingest_one(
    state: &AppState,
    caller: &PartnerCaller,
    headers: &HeaderMap,
    (raw, path): (&[u8], &str),
    event: EventBody,
    status: StatusCode,
    answer: impl FnOnce(Uuid) -> Value,
) -> Result<Response, ApiError> {
    let key = idempotency_key(headers)?;
    let event = one_event(event, Utc::now(), &state.settings.event_limits, None)
        .map_err(|errors| validation_failed("the event is invalid", errors))?;
    let stored = stored_event(caller.partner_id, event);
    let body = answer(stored.id);
    store_events(
        state,
        caller.partner_id,
        with_fingerprint(key, path, raw),
        vec![stored],
        status,
        body,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<Event> {
    events: Vec<Event>,
}

impl Batch<EventBody> {
    /// As [`EventBody::parse`]: one pass when every event is well-formed, else item by item.
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let events = match serde_json::from_slice::<Batch<EventInput>>(bytes) {
            Ok(batch) => batch.events.into_iter().map(EventBody::Input).collect(),
            Err(_) => parse_json::<Batch<Value>>(bytes)?
                .events
                .into_iter()
                .map(EventBody::Json)
                .collect(),
        };
        Ok(Self { events })
    }
}

/// The events of a batch body, all valid, or the problem listing every invalid one.
pub fn batch(
    bytes: &[u8],
    now: DateTime<Utc>,
    limits: &EventLimits,
) -> Result<Vec<ValidEvent>, ApiError> {
    let batch = Batch::parse(bytes)?;
    let max = limits.max_batch_events;
    if batch.events.is_empty() {
        return Err(ApiError::invalid("a batch needs at least one event"));
    }
    if batch.events.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("a batch holds at most {max} events; split it"),
        ));
    }
    let mut events = Vec::with_capacity(batch.events.len());
    let mut errors = Vec::new();
    for (index, body) in batch.events.into_iter().enumerate() {
        match one_event(body, now, limits, Some(index)) {
            Ok(event) => events.push(event),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    if !errors.is_empty() {
        return Err(validation_failed(
            "some events are invalid; none were stored",
            errors,
        ));
    }
    Ok(events)
}

/// Stores a batch: all events or none, with per-item errors.
#[utoipa::path(post, path = "/v1/events/batch", tag = "events", request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    security(("apikey" = [])),
    responses((status = 202, body = BatchAccepted), (status = "4XX", body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn post_batch(
    State(state): State<AppState>,
    caller: PartnerCaller,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let events: Vec<NewEvent> = batch(&bytes, Utc::now(), &state.settings.event_limits)?
        .into_iter()
        .map(|event| stored_event(caller.partner_id, event))
        .collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    store_events(
        &state,
        caller.partner_id,
        with_fingerprint(key, "/v1/events/batch", &bytes),
        events,
        StatusCode::ACCEPTED,
        to_json(&BatchAccepted {
            accepted: ids.len(),
            ids,
        }),
    )
    .await
}

/// Original path (also `/functions/v1/ingest`): one event →
/// `201 {"success", "message", "eventId"}`.
#[utoipa::path(post, path = "/ingest", tag = "original paths", request_body = EventInput,
    security(("apikey" = [])),
    responses((status = 201, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn post_ingest_original(
    State(state): State<AppState>,
    caller: PartnerCaller,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let body = EventBody::parse(&bytes)?;
    ingest_one(
        &state,
        &caller,
        &headers,
        (&bytes, "/ingest"),
        body,
        StatusCode::CREATED,
        |id| json!({ "success": true, "message": "Event ingested successfully", "eventId": id }),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntegrationGuideEvent {
    event_type: String,
    #[schema(value_type = Object)]
    payload: Value,
}

/// The original integration guide's form (also `/functions/v1/ingest-v2`):
/// `{eventType, payload}` → `201 {"status", "message", "eventId"}`.
#[utoipa::path(post, path = "/ingest-v2", tag = "original paths",
    request_body = IntegrationGuideEvent, security(("apikey" = [])),
    responses((status = 201, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn post_ingest_v2(
    State(state): State<AppState>,
    caller: PartnerCaller,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let body: IntegrationGuideEvent = parse_json(&bytes)?;
    ingest_one(
        &state,
        &caller,
        &headers,
        (&bytes, "/ingest-v2"),
        EventBody::Json(json!({ "event_type": body.event_type, "data": body.payload })),
        StatusCode::CREATED,
        |id| json!({ "status": "success", "message": "Event ingested", "eventId": id }),
    )
    .await
}
