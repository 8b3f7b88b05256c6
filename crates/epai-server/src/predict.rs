//! Synchronous predictions: `POST /v1/models/{name}/predict` and the original `POST /predict`.
//! The attendance and lead models are trained on the caller's own events at request time; the
//! volume forecaster scores any supplied daily series.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use epai_engine::EngineError;
use epai_engine::attendance::{AttendanceQuery, AttendanceRecord, train_attendance_model};
use epai_engine::event_data::{EventData, attendance_record, lead_examples};
use epai_engine::forecast::{Horizon, IntervalLevel, forecast_series};
use epai_engine::lead::{LeadFeatures, train_lead_model};
use epai_engine::series::DatedValue;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::PartnerCaller;
use crate::caller::AccountCaller;
use crate::custom_models;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::extract::{ApiJson, parse_json};

/// How many of the partner's latest events of a kind a model trains on.
const TRAINING_EVENTS: i64 = 5000;

fn engine_error(e: EngineError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidRequest,
        e.to_string(),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesPoint {
    date: NaiveDate,
    value: f64,
}

/// `event_volume_forecast` input: a daily series to forecast, or one of the partner's event
/// types (its daily counts of the last 120 days). Exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// Consecutive days, at least 14.
    series: Option<Vec<SeriesPoint>>,
    /// Forecast the partner's own daily count of this event type instead.
    event_type: Option<String>,
    /// Days to forecast, 1 to 366 (default 14).
    horizon: Option<usize>,
    /// Interval levels in percent (default `[80, 95]`).
    level: Option<Vec<f64>>,
}

/// The original `/predict` attendance form.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttendanceForm {
    pub(crate) venue: String,
    pub(crate) event_date: NaiveDate,
    pub(crate) genre: String,
    pub(crate) ticket_price: f64,
    pub(crate) marketing_budget: f64,
    pub(crate) venue_capacity: u32,
}

/// The original `/predict` lead form.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeadForm {
    /// Identifies the lead in the original form; not a model feature.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) customer_email: Option<String>,
    /// Identifies the lead in the original form; not a model feature.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) customer_name: Option<String>,
    #[serde(default)]
    pub(crate) age: Option<f64>,
    /// Accepted for the original form; not a model feature.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) location: Option<String>,
    pub(crate) engagement_score: f64,
    pub(crate) previous_purchases: f64,
    pub(crate) website_visits: f64,
    pub(crate) email_opens: f64,
    pub(crate) social_media_engagement: f64,
}

/// A prediction in the shape every path shares.
pub struct Prediction {
    pub value: f64,
    /// Earned from the model's own backtest; custom models report none.
    pub confidence: Option<f64>,
    pub(crate) explanation: String,
    pub(crate) details: Value,
}

/// Days of the partner's own counts a forecast of one of its event types reads, as the worker.
const OWN_HISTORY_DAYS: u32 = 120;

/// The prediction `event_volume_forecast` answers for a supplied series (a request naming an
/// event type instead needs a partner: [`forecast_for`]).
pub async fn forecast(request: ForecastRequest) -> Result<Prediction, ApiError> {
    forecast_for(None, request).await
}

/// The prediction `event_volume_forecast` answers for a supplied series or, with `partner`, for
/// the partner's own counts of an event type.
async fn forecast_for(
    partner: Option<(&AppState, &AccountCaller)>,
    request: ForecastRequest,
) -> Result<Prediction, ApiError> {
    let horizon = Horizon::new(request.horizon.unwrap_or(14)).map_err(engine_error)?;
    let levels = match request.level {
        None => IntervalLevel::defaults(),
        Some(levels) => levels
            .into_iter()
            .map(IntervalLevel::new)
            .collect::<Result<_, _>>()
            .map_err(engine_error)?,
    };
    let points: Vec<DatedValue> = match (request.series, request.event_type) {
        (Some(series), None) => series
            .into_iter()
            .map(|p| DatedValue {
                date: p.date,
                value: p.value,
            })
            .collect(),
        (None, Some(event_type)) => {
            let Some((state, caller)) = partner else {
                return Err(ApiError::invalid(
                    "a forecast of an event type needs the partner's own events",
                ));
            };
            let today = Utc::now().date_naive();
            let all = state
                .store
                .as_user(caller.user_id, async |t| {
                    t.own_daily_counts(OWN_HISTORY_DAYS, today).await
                })
                .await?;
            let series = all
                .iter()
                .find(|s| s.event_type == event_type)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ErrorCode::InvalidRequest,
                        format!("no events of this type in the last {OWN_HISTORY_DAYS} days"),
                    )
                })?;
            let (first_day, values) = series.since_first_event();
            values
                .into_iter()
                .enumerate()
                .map(|(i, value)| DatedValue {
                    date: epai_engine::series::date_at(first_day, i),
                    value,
                })
                .collect()
        }
        _ => return Err(ApiError::invalid("give either series or event_type")),
    };
    let forecast = forecast_series(&points, horizon, &levels).map_err(engine_error)?;
    let confidence = epai_engine::forecast::confidence_from_backtest(forecast.backtest.as_ref());
    Ok(Prediction {
        value: forecast.points.iter().map(|p| p.value).sum(),
        confidence: Some(confidence.value()),
        explanation: format!(
            "{} days forecast from {} observed days",
            forecast.points.len(),
            points.len()
        ),
        details: serde_json::to_value(&forecast).unwrap_or(Value::Null),
    })
}

pub(crate) async fn attendance(
    state: &AppState,
    caller: &AccountCaller,
    form: AttendanceForm,
) -> Result<Prediction, ApiError> {
    let rows = state
        .store
        .as_user(caller.user_id, async |t| {
            t.recent_event_data("event_attendance", TRAINING_EVENTS)
                .await
        })
        .await?;
    let records: Vec<AttendanceRecord> = rows
        .into_iter()
        .filter_map(|(occurred_at, data)| attendance_record(&EventData { occurred_at, data }))
        .collect();
    let model = train_attendance_model(&records).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidRequest,
            format!("not enough event_attendance events to learn from: {e}"),
        )
    })?;
    let prediction = model
        .predict(&AttendanceQuery {
            venue: form.venue,
            event_date: form.event_date,
            genre: form.genre,
            ticket_price: form.ticket_price,
            marketing_budget: form.marketing_budget,
            venue_capacity: form.venue_capacity,
            lead_time_days: None,
        })
        .map_err(engine_error)?;
    Ok(Prediction {
        value: prediction.prediction,
        confidence: Some(prediction.confidence.value()),
        explanation: prediction.explanation.clone(),
        details: serde_json::to_value(&prediction).unwrap_or(Value::Null),
    })
}

pub(crate) async fn lead(
    state: &AppState,
    caller: &AccountCaller,
    form: LeadForm,
) -> Result<Prediction, ApiError> {
    let (leads, sales) = state
        .store
        .as_user(caller.user_id, async |t| {
            Ok((
                t.recent_event_data("lead", TRAINING_EVENTS).await?,
                t.recent_event_data("sales_transaction", TRAINING_EVENTS)
                    .await?,
            ))
        })
        .await?;
    let as_events = |rows: Vec<(DateTime<Utc>, Value)>| -> Vec<EventData> {
        rows.into_iter()
            .map(|(occurred_at, data)| EventData { occurred_at, data })
            .collect()
    };
    let examples = lead_examples(&as_events(leads), &as_events(sales));
    let model = train_lead_model(&examples).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidRequest,
            format!("not enough lead events with outcomes to learn from: {e}"),
        )
    })?;
    let score = model
        .score(&LeadFeatures {
            engagement_score: form.engagement_score,
            previous_purchases: form.previous_purchases,
            website_visits: form.website_visits,
            email_opens: form.email_opens,
            social_media_engagement: form.social_media_engagement,
            age: form.age,
        })
        .map_err(engine_error)?;
    Ok(Prediction {
        value: score.prediction,
        confidence: Some(score.confidence.value()),
        explanation: score.explanation.clone(),
        details: serde_json::to_value(&score).unwrap_or(Value::Null),
    })
}

/// A prediction from a model: `event_volume_forecast` forecasts a supplied `series` or the
/// partner's own daily counts of an `event_type`;
/// `attendance_forecast` and `lead_scoring` learn from the partner's own events and answer the
/// original `/predict` forms; a custom ONNX model (`epai model register`) runs on `inputs`
/// named as registered, and answers `confidence: null` and every output in `details.outputs`.
#[utoipa::path(post, path = "/v1/models/{name}/predict", tag = "models",
    params(("name" = String, Path, description = "event_volume_forecast, attendance_forecast, lead_scoring or a custom ONNX model's name")),
    request_body(content = Object, description = "ForecastRequest, AttendanceForm, LeadForm or CustomModelRequest"),
    security(("apikey" = []), ("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn predict(
    State(state): State<AppState>,
    caller: AccountCaller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let prediction = match name.as_str() {
        "event_volume_forecast" => forecast_for(Some((&state, &caller)), inputs(body)?).await?,
        "attendance_forecast" => attendance(&state, &caller, inputs(body)?).await?,
        "lead_scoring" => lead(&state, &caller, inputs(body)?).await?,
        _ => {
            let record = state
                .store
                .as_user(caller.user_id, async |t| t.custom_model(&name).await)
                .await?
                .ok_or_else(|| ApiError::not_found("no model with this name takes predictions"))?;
            custom_models::predict(
                &state.custom_models,
                &state.store,
                caller.user_id,
                &record,
                inputs(body)?,
            )
            .await?
        }
    };
    Ok(Json(json!({
        "model": name,
        "prediction": prediction.value,
        "confidence": prediction.confidence,
        "explanation": prediction.explanation,
        "details": prediction.details,
    })))
}

/// The body as the model's declared inputs, or a 400 naming what is wrong.
pub(crate) fn inputs<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parse_json(&bytes)
}

/// Original path (also `/functions/v1/predict`): `{modelType, ...form}` →
/// `{"data": {requestId, prediction, confidence, explanation, timestamp}}`.
#[utoipa::path(post, path = "/predict", tag = "original paths",
    request_body = Object, security(("apikey" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn original_predict(
    State(state): State<AppState>,
    caller: PartnerCaller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let model_type = body
        .as_object_mut()
        .and_then(|o| o.remove("modelType"))
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| {
            ApiError::invalid("modelType must be attendance_forecast or lead_scoring")
        })?;
    let account = AccountCaller {
        user_id: caller.tenant_user()?,
        partner_id: Some(caller.partner_id),
    };
    let prediction = match model_type.as_str() {
        "attendance_forecast" => attendance(&state, &account, inputs(body)?).await?,
        "lead_scoring" => lead(&state, &account, inputs(body)?).await?,
        _ => {
            return Err(ApiError::invalid(
                "modelType must be attendance_forecast or lead_scoring",
            ));
        }
    };
    Ok(Json(json!({
        "data": {
            "requestId": Uuid::new_v4(),
            "prediction": prediction.value,
            "confidence": prediction.confidence,
            "explanation": prediction.explanation,
            "timestamp": Utc::now(),
        }
    })))
}
