//! Synchronous predictions: `POST /v1/models/{name}/predict` and the original `POST /predict`.
//! The attendance and lead models are trained on the caller's own events at request time; the
//! volume forecaster scores any supplied daily series.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use epai_engine::EngineError;
use epai_engine::attendance::{AttendanceQuery, AttendanceRecord, train_attendance_model};
use epai_engine::forecast::{Horizon, IntervalLevel, forecast_series};
use epai_engine::lead::{LeadExample, LeadFeatures, train_lead_model};
use epai_engine::series::DatedValue;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::PartnerCaller;
use crate::caller::AccountCaller;
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

/// `event_volume_forecast` input: a daily series to forecast.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// Consecutive days, at least 14.
    series: Vec<SeriesPoint>,
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
    pub confidence: f64,
    pub(crate) explanation: String,
    details: Value,
}

/// The prediction `event_volume_forecast` answers for a supplied series.
pub async fn forecast(request: ForecastRequest) -> Result<Prediction, ApiError> {
    let horizon = Horizon::new(request.horizon.unwrap_or(14)).map_err(engine_error)?;
    let levels = match request.level {
        None => IntervalLevel::defaults(),
        Some(levels) => levels
            .into_iter()
            .map(IntervalLevel::new)
            .collect::<Result<_, _>>()
            .map_err(engine_error)?,
    };
    let points: Vec<DatedValue> = request
        .series
        .into_iter()
        .map(|p| DatedValue {
            date: p.date,
            value: p.value,
        })
        .collect();
    let forecast = forecast_series(&points, horizon, &levels).map_err(engine_error)?;
    let confidence = epai_engine::forecast::confidence_from_backtest(forecast.backtest.as_ref());
    Ok(Prediction {
        value: forecast.points.iter().map(|p| p.value).sum(),
        confidence: confidence.value(),
        explanation: format!(
            "{} days forecast from {} observed days",
            forecast.points.len(),
            points.len()
        ),
        details: serde_json::to_value(&forecast).unwrap_or(Value::Null),
    })
}

fn number(data: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|k| data.get(*k))
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
        .filter(|v| v.is_finite())
}

fn text(data: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| data.get(*k))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A past event from an `event_attendance` event, when it carries counts; other fields default
/// (genre "unknown", price and budget 0, the event date from when it happened).
fn attendance_record(occurred_at: DateTime<Utc>, data: &Value) -> Option<AttendanceRecord> {
    let capacity = number(data, &["capacity", "venue_capacity"])?;
    let attendees = number(data, &["attendee_count", "attendees"])?;
    if capacity < 1.0 || attendees < 0.0 || capacity > f64::from(u32::MAX) {
        return None;
    }
    Some(AttendanceRecord {
        venue: text(data, &["venue_id", "venue"]).unwrap_or_else(|| "unknown".into()),
        event_date: text(data, &["event_date"])
            .and_then(|d| d.get(..10)?.parse().ok())
            .unwrap_or_else(|| occurred_at.date_naive()),
        genre: text(data, &["genre"]).unwrap_or_else(|| "unknown".into()),
        ticket_price: number(data, &["ticket_price", "ticketPrice"]).unwrap_or(0.0),
        marketing_budget: number(data, &["marketing_budget", "marketingBudget"]).unwrap_or(0.0),
        capacity: capacity as u32,
        attendee_count: attendees.min(capacity) as u32,
        lead_time_days: number(data, &["lead_time_days"])
            .filter(|d| *d >= 0.0)
            .map(|d| d as u32),
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
        .iter()
        .filter_map(|(at, data)| attendance_record(*at, data))
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
        confidence: prediction.confidence.value(),
        explanation: prediction.explanation.clone(),
        details: serde_json::to_value(&prediction).unwrap_or(Value::Null),
    })
}

fn lead_features(data: &Value) -> LeadFeatures {
    let attributes = data.get("attributes").unwrap_or(&Value::Null);
    let field = |keys: &[&str]| {
        number(data, keys)
            .or_else(|| number(attributes, keys))
            .unwrap_or(0.0)
    };
    LeadFeatures {
        engagement_score: field(&["engagementScore", "engagement_score"]),
        previous_purchases: field(&["previousPurchases", "previous_purchases"]),
        website_visits: field(&["websiteVisits", "website_visits"]),
        email_opens: field(&["emailOpens", "email_opens"]),
        social_media_engagement: field(&["socialMediaEngagement", "social_media_engagement"]),
        age: number(data, &["age"]).or_else(|| number(attributes, &["age"])),
    }
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
    // A lead converted when a later sale names it (by lead id or email).
    let buyers: Vec<(DateTime<Utc>, Option<String>, Option<String>)> = sales
        .iter()
        .map(|(at, d)| {
            (
                *at,
                text(d, &["userId", "leadId", "user_id"]),
                text(d, &["email", "customerEmail"]),
            )
        })
        .collect();
    let examples: Vec<LeadExample> = leads
        .iter()
        .map(|(at, data)| {
            let id = text(data, &["leadId", "lead_id", "userId"]);
            let email = text(data, &["email"]);
            let converted = buyers.iter().any(|(sold_at, buyer, buyer_email)| {
                sold_at >= at
                    && ((id.is_some() && buyer == &id)
                        || (email.is_some() && buyer_email == &email))
            });
            LeadExample {
                features: lead_features(data),
                converted,
            }
        })
        .collect();
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
        confidence: score.confidence.value(),
        explanation: score.explanation.clone(),
        details: serde_json::to_value(&score).unwrap_or(Value::Null),
    })
}

/// A prediction from a model: `event_volume_forecast` forecasts a supplied `series`;
/// `attendance_forecast` and `lead_scoring` learn from the partner's own events and answer the
/// original `/predict` forms.
#[utoipa::path(post, path = "/v1/models/{name}/predict", tag = "models",
    params(("name" = String, Path, description = "event_volume_forecast, attendance_forecast or lead_scoring")),
    request_body(content = Object, description = "ForecastRequest, AttendanceForm or LeadForm"),
    security(("apikey" = []), ("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn predict(
    State(state): State<AppState>,
    caller: AccountCaller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let prediction = match name.as_str() {
        "event_volume_forecast" => forecast(inputs(body)?).await?,
        "attendance_forecast" => attendance(&state, &caller, inputs(body)?).await?,
        "lead_scoring" => lead(&state, &caller, inputs(body)?).await?,
        _ => {
            return Err(ApiError::not_found(
                "no model with this name takes predictions",
            ));
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
