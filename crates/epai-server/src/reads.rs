//! Tenant reads: events, insights, models, usage and logs, each in a transaction scoped to the
//! caller's account so row-level security decides what exists.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use epai_domain::{AuthUserId, PartnerId};
use epai_store::{
    EventFilter, EventRecord, InsightFilter, InsightRecord, LogEntry, ModelRecord, SecurityEvent,
    UsageDay,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{AccountCaller, InsightReader};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::observe::ClientInfo;
use crate::read_cache::InsightList;

/// `(timestamp, id)` of the last row of a page, as an opaque `<microseconds>_<uuid>` string.
pub(crate) fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id.simple())
}

pub fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::invalid("cursor is not one this API returned");
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

fn bounded(name: &str, value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let value = value.unwrap_or(default);
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be between 1 and {max}"
        )))
    }
}

fn non_negative(name: &str, value: Option<i64>) -> Result<i64, ApiError> {
    match value.unwrap_or(0) {
        v if v >= 0 && v <= i64::from(i32::MAX) => Ok(v),
        _ => Err(ApiError::invalid(format!("{name} must not be negative"))),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events that happened at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events that happened before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    data: Vec<EventRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// The partner's recent events, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    security(("apikey" = [])),
    responses((status = 200, body = EventPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: AccountCaller,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = bounded("limit", query.limit, 50, 100)?;
    let filter = EventFilter {
        event_type: query.event_type,
        since: query.since,
        until: query.until,
        before: query.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    };
    let events = state
        .store
        .as_user(caller.user_id, async |t| t.events(&filter).await)
        .await?;
    let next_cursor = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| encode_cursor(e.occurred_at, e.id)))
        .flatten();
    Ok(Json(EventPage {
        data: events,
        next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InsightsQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Rows to skip (alternative to `cursor`).
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only insights of the model with this name.
    model: Option<String>,
    /// Only insights created at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct InsightPage<'a> {
    data: Vec<&'a InsightRecord>,
    /// Insights matching the filters, over all pages.
    total: i64,
    next_cursor: Option<String>,
}

/// The partner's insights, newest first.
#[utoipa::path(get, path = "/v1/insights", tag = "insights", params(InsightsQuery),
    security(("apikey" = [])),
    responses((status = 200, body = InsightPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list_insights(
    State(state): State<AppState>,
    caller: InsightReader,
    ApiQuery(query): ApiQuery<InsightsQuery>,
) -> Result<Response, ApiError> {
    let limit = bounded("limit", query.limit, 20, 100)?;
    let filter = InsightFilter {
        model: scoped_model(&caller, query.model)?,
        since: query.since,
        before: query.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
        offset: non_negative("offset", query.offset)?,
    };
    let list = insight_list(&state, &caller, &filter).await?;
    let insights = within_scope(&caller, &list.insights);
    let next_cursor = (insights.len() as i64 == limit)
        .then(|| {
            insights
                .last()
                .and_then(|i| Some(encode_cursor(i.created_at?, i.id)))
        })
        .flatten();
    Ok(Json(InsightPage {
        data: insights,
        total: list.total,
        next_cursor,
    })
    .into_response())
}

/// The page `filter` selects, from this replica's cache when the caller's partner is known.
async fn insight_list(
    state: &AppState,
    caller: &InsightReader,
    filter: &InsightFilter,
) -> Result<Arc<InsightList>, ApiError> {
    let load = async || {
        let (insights, total) = state
            .store
            .as_user(caller.user_id, async |t| t.insights(filter).await)
            .await?;
        Ok(InsightList { insights, total })
    };
    match caller.partner_id {
        Some(partner) => {
            state
                .reads
                .insights(caller.user_id, partner, filter, load)
                .await
        }
        None => load().await.map(Arc::new),
    }
}

/// One insight. Another partner's id answers 404, exactly like an id that does not exist, and is
/// recorded as a security event.
#[utoipa::path(get, path = "/v1/insights/{id}", tag = "insights",
    params(("id" = String, Path, description = "Insight id")),
    security(("apikey" = [])),
    responses((status = 200, body = InsightRecord), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn get_insight(
    State(state): State<AppState>,
    caller: InsightReader,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
) -> Result<Json<InsightRecord>, ApiError> {
    let not_found = || ApiError::not_found("no insight with this id");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let found = state
        .store
        .as_user(caller.user_id, async |t| t.insight(id).await)
        .await?;
    if let Some(insight) = found.filter(|i| in_scope(&caller, i)) {
        return Ok(Json(insight));
    }
    report_foreign_insight(&state, &caller, client.map(|c| c.0), id).await;
    Err(not_found())
}

/// An embed token sees only the insights its scope names.
pub(crate) fn in_scope(caller: &InsightReader, insight: &InsightRecord) -> bool {
    caller
        .embed
        .as_ref()
        .is_none_or(|embed| embed.allows(insight.id, insight.model_name.as_deref()))
}

fn within_scope<'a>(
    caller: &InsightReader,
    insights: &'a [InsightRecord],
) -> Vec<&'a InsightRecord> {
    insights.iter().filter(|i| in_scope(caller, i)).collect()
}

/// The model filter, which an embed token scoped to one model may not widen.
fn scoped_model(
    caller: &InsightReader,
    requested: Option<String>,
) -> Result<Option<String>, ApiError> {
    match caller.embed.as_ref().and_then(|e| e.model.clone()) {
        None => Ok(requested),
        Some(scoped) if requested.as_ref().is_none_or(|r| *r == scoped) => Ok(Some(scoped)),
        Some(_) => Err(ApiError::not_found(
            "no insights of that model for this token",
        )),
    }
}

/// Records a `cross_tenant_access` security event when `id` belongs to another partner.
pub async fn report_foreign_insight(
    state: &AppState,
    caller: &InsightReader,
    client: Option<ClientInfo>,
    id: Uuid,
) {
    let accessor = Accessor {
        user: caller.user_id,
        partner: caller.partner_id,
    };
    report_foreign(state, accessor, client, Resource::Insight, id).await;
}

/// Tenant resources looked up by id, whose foreign ids are reported.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resource {
    Insight,
    Log,
}

/// Who asked for a resource: the account, and its partner when the credential named it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Accessor {
    pub(crate) user: AuthUserId,
    pub(crate) partner: Option<PartnerId>,
}

/// Records a `cross_tenant_access` security event when the `resource` with `id`, which the
/// caller could not see, belongs to another partner (an id that exists nowhere is a typo).
pub(crate) async fn report_foreign(
    state: &AppState,
    accessor: Accessor,
    client: Option<ClientInfo>,
    resource: Resource,
    id: Uuid,
) {
    let owner = state
        .store
        .as_service_role(async |s| match resource {
            Resource::Insight => s.insight_owner(id).await,
            Resource::Log => s.log_owner(id).await,
        })
        .await;
    let own_partner = match accessor.partner {
        Some(partner) => Some(partner),
        None => state
            .store
            .as_user(accessor.user, async |t| t.partner().await)
            .await
            .ok()
            .map(|p| p.id),
    };
    if let Ok(Some(owner)) = owner
        && Some(owner) != own_partner
    {
        let resource = match resource {
            Resource::Insight => "insight",
            Resource::Log => "log",
        };
        state.activity.security(SecurityEvent {
            event_type: "cross_tenant_access".into(),
            partner_id: own_partner,
            user_id: Some(accessor.user),
            ip_address: client.as_ref().and_then(ClientInfo::ip_text),
            user_agent: client.and_then(|c| c.user_agent),
            details: json!({ "resource": resource, "id": id }),
            created_at: Utc::now(),
        });
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    data: Vec<ModelRecord>,
}

/// The model catalogue, with inputs and outputs in `metadata`.
#[utoipa::path(get, path = "/v1/models", tag = "models", security(("apikey" = [])),
    responses((status = 200, body = ModelList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list_models(
    State(state): State<AppState>,
    caller: AccountCaller,
) -> Result<Json<ModelList>, ApiError> {
    let models = state
        .store
        .as_user(caller.user_id, async |t| t.models().await)
        .await?;
    Ok(Json(ModelList { data: models }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Days to report, 1 to 366 (default 30), ending today (UTC).
    #[param(minimum = 1, maximum = 366)]
    days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageReport<'a> {
    days: i32,
    /// One row per UTC day, oldest first, days without activity included.
    data: &'a [UsageDay],
    total_events: i64,
    total_insights: i64,
}

/// Events ingested and insights generated per day (`get_partner_usage_summary`).
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageQuery),
    security(("apikey" = [])),
    responses((status = 200, body = UsageReport), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn usage(
    State(state): State<AppState>,
    caller: AccountCaller,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let days = bounded("days", query.days, 30, 366)? as i32;
    let load = async || {
        state
            .store
            .as_user(caller.user_id, async |t| t.usage_summary(days).await)
            .await
            .map_err(ApiError::from)
    };
    let summary = match caller.partner_id {
        Some(partner) => {
            let today = Utc::now().date_naive();
            state
                .reads
                .usage(caller.user_id, partner, days, today, load)
                .await?
        }
        None => Arc::new(load().await?),
    };
    let events: i64 = summary.iter().map(|d| i64::from(d.event_count)).sum();
    let insights: i64 = summary.iter().map(|d| i64::from(d.insight_count)).sum();
    Ok(Json(UsageReport {
        days,
        data: &summary,
        total_events: events,
        total_insights: insights,
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LogPage {
    data: Vec<LogEntry>,
    limit: i32,
    offset: i32,
}

/// The partner's API request log, newest first (`get_logs_for_partner`).
#[utoipa::path(get, path = "/v1/logs", tag = "logs", params(LogsQuery),
    security(("apikey" = [])),
    responses((status = 200, body = LogPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn logs(
    State(state): State<AppState>,
    caller: AccountCaller,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let limit = bounded("limit", query.limit, 100, 1000)? as i32;
    let offset = non_negative("offset", query.offset)? as i32;
    let logs = state
        .store
        .as_user(caller.user_id, async |t| t.logs(limit, offset).await)
        .await?;
    Ok(Json(LogPage {
        data: logs,
        limit,
        offset,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OriginalPage {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Original path (also under `/functions/v1`): `{insights: [{id, model_id, content,
/// created_at}], count, total}` with `limit` 1..100 (default 10) and `offset`.
#[utoipa::path(get, path = "/get-insights", tag = "original paths", params(OriginalPage),
    security(("apikey" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_insights(
    State(state): State<AppState>,
    caller: InsightReader,
    ApiQuery(query): ApiQuery<OriginalPage>,
) -> Result<Json<Value>, ApiError> {
    let filter = InsightFilter {
        model: scoped_model(&caller, None)?,
        limit: bounded("limit", query.limit, 10, 100)?,
        offset: non_negative("offset", query.offset)?,
        ..InsightFilter::default()
    };
    let list = insight_list(&state, &caller, &filter).await?;
    let shaped: Vec<Value> = within_scope(&caller, &list.insights)
        .into_iter()
        .map(|i| {
            let content = i.content.to_value();
            json!({
                "id": i.id,
                "model_id": i.model_id,
                "content": {
                    "title": content.get("title"),
                    "description": content.get("description"),
                    "confidence": content.get("confidence"),
                    "recommendation": content.get("recommendation"),
                },
                "created_at": i.created_at,
            })
        })
        .collect();
    Ok(Json(
        json!({ "insights": shaped, "count": shaped.len(), "total": list.total }),
    ))
}

#[derive(Deserialize, Default, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelsPage {
    page: Option<i64>,
}

const ORIGINAL_MODELS_PER_PAGE: usize = 6;

/// Original path (also under `/functions/v1`, GET or POST): 6 models per 0-based `page`.
#[utoipa::path(get, path = "/get-models", tag = "original paths", params(ModelsPage),
    security(("apikey" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_models(
    State(state): State<AppState>,
    caller: AccountCaller,
    ApiQuery(query): ApiQuery<ModelsPage>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        crate::extract::parse_json::<ModelsPage>(&body)?.page
    };
    let page = from_body.or(query.page).unwrap_or(0);
    let page = usize::try_from(page).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            crate::ErrorCode::InvalidRequest,
            "page must not be negative",
        )
    })?;
    let models = state
        .store
        .as_user(caller.user_id, async |t| t.models().await)
        .await?;
    let shaped: Vec<Value> = models
        .iter()
        .skip(page.saturating_mul(ORIGINAL_MODELS_PER_PAGE))
        .take(ORIGINAL_MODELS_PER_PAGE)
        .map(|m| {
            json!({
                "id": m.id,
                "model_name": m.name,
                "description": m.description,
                "model_version": m.version,
                "status": m.status,
                "metadata": m.metadata,
            })
        })
        .collect();
    Ok(Json(json!({ "models": shaped, "count": shaped.len() })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicInsightRequest {
    insight_id: String,
}

/// Original path (also under `/functions/v1`): `{"insight": {id, model_id, content,
/// created_at}}`.
#[utoipa::path(post, path = "/get-public-insight", tag = "original paths",
    request_body = PublicInsightRequest, security(("apikey" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_public_insight(
    State(state): State<AppState>,
    caller: InsightReader,
    client: Option<axum::Extension<ClientInfo>>,
    crate::extract::ApiJson(request): crate::extract::ApiJson<PublicInsightRequest>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("no insight with this id");
    let id = Uuid::parse_str(&request.insight_id).map_err(|_| not_found())?;
    let found = state
        .store
        .as_user(caller.user_id, async |t| t.insight(id).await)
        .await?;
    match found.filter(|i| in_scope(&caller, i)) {
        Some(i) => Ok(Json(json!({
            "insight": {"id": i.id, "model_id": i.model_id, "content": i.content, "created_at": i.created_at}
        }))),
        None => {
            report_foreign_insight(&state, &caller, client.map(|c| c.0), id).await;
            Err(not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        for garbage in [
            "",
            "x",
            "1_2",
            "abc_00000000000000000000000000000000",
            "' OR 1=1 --",
        ] {
            assert!(decode_cursor(garbage).is_err(), "{garbage}");
        }
    }
}
