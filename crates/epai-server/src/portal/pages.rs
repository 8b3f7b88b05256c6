//! The signed-in pages: dashboard, API key, logs, insights, models, events, settings, guide.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use epai_domain::{Email, PartnerName};
use epai_store::portal::LogFilter;
use epai_store::{EventFilter, InsightFilter, InsightRecord, StoreError};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{PageError, page, when};
use super::{CheckedForm, Member, charts};
use crate::AppState;
use crate::observe::ClientInfo;
use crate::reads::{Accessor, Resource, report_foreign};

/// Days before expiry from which the key page and dashboard warn.
const EXPIRY_WARNING_DAYS: i64 = 14;
const LOGS_PER_PAGE: i64 = 25;

type PageResult = Result<Response, PageError>;

/// `content` is the insight's content as a tree (`insight.content.to_value()`), parsed once per
/// insight by the caller.
fn title_of(content: &serde_json::Value) -> String {
    content
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or("Untitled insight")
        .to_owned()
}

/// The model's name from the catalogue, else the name the content carries.
fn model_of(insight: &InsightRecord, content: &serde_json::Value) -> String {
    insight
        .model_name
        .clone()
        .or_else(|| text_field(content, "model").map(str::to_owned))
        .unwrap_or_default()
}

fn expiry_warning(expires_at: Option<chrono::DateTime<Utc>>) -> Option<String> {
    let expires_at = expires_at?;
    let days = (expires_at - Utc::now()).num_days();
    if expires_at <= Utc::now() {
        Some("Your API key has expired: regenerate it to keep sending events.".to_owned())
    } else if days < EXPIRY_WARNING_DAYS {
        Some(format!(
            "Your API key expires in {days} day(s): regenerate it and update your integration."
        ))
    } else {
        None
    }
}

pub(crate) async fn dashboard(State(state): State<AppState>, member: Member) -> PageResult {
    let loaded = state
        .store
        .as_user(member.session.user_id, async |t| {
            let usage = t.usage_summary(30).await?;
            let key = t.api_key_status().await?;
            let filter = InsightFilter {
                limit: 5,
                ..InsightFilter::default()
            };
            let (insights, _) = t.insights(&filter).await?;
            let switched_off = t
                .webhooks()
                .await?
                .into_iter()
                .filter(epai_store::WebhookRecord::disabled_for_failures)
                .count();
            Ok((usage, key, insights, switched_off))
        })
        .await;
    let (usage, key, insights, switched_off) =
        loaded.map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let events: i64 = usage.iter().map(|d| i64::from(d.event_count)).sum();
    let generated: i64 = usage.iter().map(|d| i64::from(d.insight_count)).sum();
    let body = html! {
        @if let Some(warning) = key.as_ref().and_then(|k| expiry_warning(k.expires_at)) {
            p.notice.warning role="status" { (warning) " " a href="/portal/api-key" { "Manage your key" } }
        }
        @if switched_off > 0 {
            p.notice.warning #webhooks-off role="status" {
                (switched_off) " webhook(s) kept failing for days and were switched off. "
                a href="/portal/webhooks" { "Review your webhooks" }
            }
        }
        section.stats aria-label="Last 30 days" {
            div.stat { span.figure #event-total { (events) } span { " events in the last 30 days" } }
            div.stat { span.figure #insight-total { (generated) } span { " insights in the last 30 days" } }
            div.stat {
                span.figure { (key.as_ref().and_then(|k| k.key_prefix.clone()).unwrap_or_else(|| "no key".into())) }
                span { " API key · expires " (when(key.as_ref().and_then(|k| k.expires_at))) }
            }
        }
        section {
            h2 { "Usage" }
            (charts::usage(&usage))
        }
        section {
            h2 { "Latest insights" }
            @if insights.is_empty() {
                p { "No insights yet: they appear once your events give the models enough to go on." }
            } @else {
                ul.insights {
                    @for insight in &insights {
                        li { a href={ "/portal/insights/" (insight.id) } { (title_of(&insight.content.to_value())) } " · " (when(insight.created_at)) }
                    }
                }
            }
        }
    };
    Ok(page(&member.visitor, "Dashboard", "/portal/dashboard", body).into_response())
}

pub(crate) async fn api_key(State(state): State<AppState>, member: Member) -> PageResult {
    let status = state
        .store
        .as_user(member.session.user_id, async |t| t.api_key_status().await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let body = html! {
        @if let Some(warning) = status.as_ref().and_then(|k| expiry_warning(k.expires_at)) {
            p.notice.warning role="status" { (warning) }
        }
        @match &status {
            Some(key) => {
                dl.facts {
                    dt { "Prefix" } dd #key-prefix { code { (key.key_prefix.clone().unwrap_or_default()) } }
                    dt { "Created" } dd { (when(key.created_at)) }
                    dt { "Expires" } dd { (when(key.expires_at)) }
                    dt { "Last used" } dd { (when(key.last_used_at)) }
                }
                p { "The key itself is stored only as a hash and cannot be shown again." }
            }
            None => { p { "You have no API key yet." } }
        }
        p { a.button href="/portal/api-key/regenerate" { @if status.is_some() { "Regenerate key…" } @else { "Create key…" } } }
    };
    Ok(page(&member.visitor, "API key", "/portal/api-key", body).into_response())
}

pub(crate) async fn confirm_regenerate(member: Member) -> Response {
    let body = html! {
        p { "A new key replaces the current one. Requests signed with the current key stop working after a short grace period, so update your integration right away." }
        form.card method="post" action="/portal/api-key/regenerate" {
            input type="hidden" name="csrf" value=(member.visitor.csrf);
            button.primary.danger #confirm-regenerate type="submit" { "Yes, regenerate the key" }
            a href="/portal/api-key" { "Cancel" }
        }
    };
    page(
        &member.visitor,
        "Regenerate API key",
        "/portal/api-key",
        body,
    )
    .into_response()
}

/// Shows the new key in this response only: it is never stored in plaintext, so reloading
/// cannot show it again.
pub(crate) async fn regenerate_key(
    State(state): State<AppState>,
    client: Option<axum::Extension<crate::observe::ClientInfo>>,
    form: CheckedForm<super::NoFields>,
) -> PageResult {
    let visitor = form.visitor;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let (key, status) = crate::keys::rotate(&state, &session, client.map(|c| c.0))
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    let body = html! {
        p.notice.warning role="status" { "Copy your new key now: it will not be shown again." }
        div.secret {
            code #new-key { (key) }
            button type="button" data-copy="new-key" { "Copy" }
        }
        dl.facts {
            dt { "Expires" } dd { (when(status.and_then(|s| s.expires_at))) }
        }
        p { a href="/portal/api-key" { "Done" } }
    };
    Ok(page(&visitor, "Your new API key", "/portal/api-key", body).into_response())
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    page: Option<i64>,
}

pub(crate) async fn logs(
    State(state): State<AppState>,
    member: Member,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> PageResult {
    let Query(query) = query.unwrap_or_default();
    let page_number = query.page.unwrap_or(0).clamp(0, 100_000);
    let filter = LogFilter {
        status_class: match query.status.as_str() {
            "2xx" => Some(2),
            "3xx" => Some(3),
            "4xx" => Some(4),
            "5xx" => Some(5),
            _ => None,
        },
        endpoint: Some(query.endpoint.trim().to_owned()).filter(|e| !e.is_empty()),
        // One more than shown tells whether a next page exists.
        limit: LOGS_PER_PAGE + 1,
        offset: page_number * LOGS_PER_PAGE,
    };
    let mut rows = state
        .store
        .as_user(member.session.user_id, async |t| {
            t.filtered_logs(&filter).await
        })
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let has_next = rows.len() > usize::try_from(LOGS_PER_PAGE).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(LOGS_PER_PAGE).unwrap_or(usize::MAX));
    let link = |page: i64| {
        format!(
            "/portal/logs?status={}&endpoint={}&page={page}",
            url_component(&query.status),
            url_component(&query.endpoint)
        )
    };
    let body = html! {
        form.filters method="get" action="/portal/logs" {
            label for="status" { "Status" }
            select #status name="status" {
                @for (value, label) in [("", "Any"), ("2xx", "2xx success"), ("3xx", "3xx redirect"), ("4xx", "4xx client error"), ("5xx", "5xx server error")] {
                    option value=(value) selected[query.status == value] { (label) }
                }
            }
            label for="endpoint" { "Endpoint contains" }
            input #endpoint type="text" name="endpoint" value=(query.endpoint);
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p { "No requests match." }
        } @else {
            div.table-wrap {
                table {
                    caption.visually-hidden { "Requests, newest first" }
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Method" } th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Duration" } } }
                    tbody {
                        @for row in &rows {
                            tr {
                                td { a href={ "/portal/logs/" (row.id) } { (when(row.created_at)) } }
                                td { (row.method) }
                                td { code { (row.path) } }
                                td { (row.status_code) }
                                td { (row.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if page_number > 0 { a href=(link(page_number - 1)) rel="prev" { "Newer" } }
            @if has_next { a href=(link(page_number + 1)) rel="next" { "Older" } }
        }
    };
    Ok(page(&member.visitor, "Request logs", "/portal/logs", body).into_response())
}

/// Percent-encodes a query value (filters are short text).
fn url_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn pretty(value: Option<&serde_json::Value>) -> String {
    value.map_or_else(
        || "(not recorded)".to_owned(),
        |v| serde_json::to_string_pretty(v).unwrap_or_default(),
    )
}

/// A page for a resource the member cannot see: reported when it is another partner's, then
/// answered like one that does not exist.
async fn foreign(
    state: &AppState,
    member: &Member,
    client: Option<Extension<ClientInfo>>,
    resource: Resource,
    id: Uuid,
) -> PageError {
    let accessor = Accessor {
        user: member.session.user_id,
        partner: None,
    };
    report_foreign(state, accessor, client.map(|c| c.0), resource, id).await;
    let what = match resource {
        Resource::Insight => "insight",
        Resource::Log => "request log",
    };
    PageError::new(member.visitor.clone(), StoreError::NotFound(what.into()))
}

pub(crate) async fn log_detail(
    State(state): State<AppState>,
    member: Member,
    client: Option<Extension<ClientInfo>>,
    Path(id): Path<Uuid>,
) -> PageResult {
    let found = state
        .store
        .as_user(member.session.user_id, async |t| t.log(id).await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let Some(log) = found else {
        return Err(foreign(&state, &member, client, Resource::Log, id).await);
    };
    let body = html! {
        dl.facts {
            dt { "Time" } dd { (when(log.created_at)) }
            dt { "Request" } dd { code { (log.method) " " (log.path) } }
            dt { "Status" } dd { (log.status_code) }
            dt { "Duration" } dd { (log.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default()) }
        }
        p.hint { "Secrets in bodies (keys, tokens, passwords, emails) are masked before they are stored." }
        h2 { "Request body" }
        pre { (pretty(log.request_body.as_ref())) }
        h2 { "Response body" }
        pre { (pretty(log.response_body.as_ref())) }
        p { a href="/portal/logs" { "Back to the logs" } }
    };
    Ok(page(&member.visitor, "Request", "/portal/logs", body).into_response())
}

pub(crate) async fn insights(State(state): State<AppState>, member: Member) -> PageResult {
    let filter = InsightFilter {
        limit: 100,
        ..InsightFilter::default()
    };
    let (insights, total) = state
        .store
        .as_user(member.session.user_id, async |t| t.insights(&filter).await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let body = html! {
        p { (total) " insights in all; the newest " (insights.len()) " are listed." }
        @if !insights.is_empty() {
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Insight" } th scope="col" { "Model" } th scope="col" { "Confidence" } th scope="col" { "Created" } } }
                    tbody {
                        @for insight in &insights {
                            @let content = insight.content.to_value();
                            tr {
                                td { a href={ "/portal/insights/" (insight.id) } { (title_of(&content)) } }
                                td { (model_of(insight, &content)) }
                                td { (confidence_text(&content)) }
                                td { (when(insight.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&member.visitor, "Insights", "/portal/insights", body).into_response())
}

fn confidence_text(content: &serde_json::Value) -> String {
    content
        .get("confidence")
        .and_then(serde_json::Value::as_f64)
        .map_or_else(String::new, |c| format!("{:.0}%", c * 100.0))
}

fn text_field<'a>(content: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    content
        .get(name)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

pub(crate) async fn insight_detail(
    State(state): State<AppState>,
    member: Member,
    client: Option<Extension<ClientInfo>>,
    Path(id): Path<Uuid>,
) -> PageResult {
    let found = state
        .store
        .as_user(member.session.user_id, async |t| t.insight(id).await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let Some(insight) = found else {
        return Err(foreign(&state, &member, client, Resource::Insight, id).await);
    };
    let content = insight.content.to_value();
    let title = title_of(&content);
    let body = html! {
        @if let Some(description) = text_field(&content, "description") { p.lead { (description) } }
        dl.facts {
            dt { "Model" } dd { (model_of(&insight, &content)) }
            dt { "Confidence" } dd { (confidence_text(&content)) }
            dt { "Created" } dd { (when(insight.created_at)) }
        }
        @if let Some(recommendation) = text_field(&content, "recommendation") {
            h2 { "Recommendation" }
            p { (recommendation) }
        }
        @if let Some(chart) = charts::insight(&content) {
            h2 { "Chart" }
            (chart)
        }
        h2 { "Embed it" }
        pre { code { (format!("<epai-insight insight-id=\"{}\" token=\"EMBED_TOKEN\"></epai-insight>", insight.id)) } }
        p { a href="/portal/insights" { "All insights" } }
    };
    Ok(page(&member.visitor, &title, "/portal/insights", body).into_response())
}

pub(crate) async fn models(State(state): State<AppState>, member: Member) -> PageResult {
    models_page(&state, &member.visitor, member.session.user_id, None).await
}

/// A playground result shown on the models page: which model, and what it said.
struct PlaygroundOutcome {
    model: String,
    result: Result<crate::predict::Prediction, String>,
}

async fn models_page(
    state: &AppState,
    visitor: &super::Visitor,
    user: epai_domain::AuthUserId,
    outcome: Option<PlaygroundOutcome>,
) -> PageResult {
    let models = state
        .store
        .as_user(user, async |t| t.models().await)
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    let list = |value: Option<&serde_json::Value>| -> Vec<String> {
        match value {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect(),
            Some(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let body = html! {
        @for model in &models {
            article.card {
                h2 { (model.name) " " span.hint { "v" (model.version) " · " (model.status) } }
                @if let Some(description) = &model.description { p { (description) } }
                @let metadata = model.metadata.as_ref();
                @let inputs = list(metadata.and_then(|m| m.get("inputs")));
                @let outputs = list(metadata.and_then(|m| m.get("outputs")));
                @if !inputs.is_empty() { p { strong { "Inputs: " } (inputs.join(", ")) } }
                @if !outputs.is_empty() { p { strong { "Outputs: " } (outputs.join(", ")) } }
                @if let Some(fields) = playground_fields(&model.name) {
                    @if let Some(outcome) = outcome.as_ref().filter(|o| o.model == model.name) {
                        @match &outcome.result {
                            Ok(prediction) => {
                                section.result aria-live="polite" {
                                    h3 { "Prediction" }
                                    p { strong.prediction { (format!("{:.2}", prediction.value)) }
                                        @if let Some(confidence) = prediction.confidence {
                                            " (confidence " (format!("{:.0}%", confidence * 100.0)) ")"
                                        } }
                                    p { (prediction.explanation) }
                                }
                            }
                            Err(message) => { p.error role="alert" { (message) } }
                        }
                    }
                    details open[outcome.as_ref().is_some_and(|o| o.model == model.name)] {
                        summary { "Try a prediction" }
                        form method="post" action="/portal/models/predict" {
                            input type="hidden" name="csrf" value=(visitor.csrf);
                            input type="hidden" name="model" value=(model.name);
                            @for (name, label, kind) in fields {
                                @let id = format!("{}-{}", model.name, name);
                                label for=(id) { (label) }
                                input id=(id) type=(kind) name=(name) required[*name != "age"] step=[(kind == &"number").then_some("any")];
                            }
                            button type="submit" { "Predict" }
                        }
                    }
                }
            }
        }
    };
    Ok(visitor.respond(page(visitor, "Models", "/portal/models", body)))
}

/// The form fields of the models that answer the original `/predict` forms.
fn playground_fields(model: &str) -> Option<&'static [(&'static str, &'static str, &'static str)]> {
    match model {
        "attendance_forecast" => Some(&[
            ("venue", "Venue", "text"),
            ("eventDate", "Event date", "date"),
            ("genre", "Genre", "text"),
            ("ticketPrice", "Ticket price", "number"),
            ("marketingBudget", "Marketing budget", "number"),
            ("venueCapacity", "Venue capacity", "number"),
        ]),
        "lead_scoring" => Some(&[
            ("engagementScore", "Engagement score", "number"),
            ("previousPurchases", "Previous purchases", "number"),
            ("websiteVisits", "Website visits", "number"),
            ("emailOpens", "Email opens", "number"),
            ("socialMediaEngagement", "Social media engagement", "number"),
            ("age", "Age (optional)", "number"),
        ]),
        _ => None,
    }
}

/// What the playground form posts: the model and its fields as typed in.
#[derive(Deserialize)]
pub struct PlaygroundForm {
    model: String,
    #[serde(flatten)]
    fields: std::collections::HashMap<String, String>,
}

/// Runs the playground form through the same prediction as `POST /v1/models/{name}/predict`.
pub(crate) async fn predict_playground(
    State(state): State<AppState>,
    member: Member,
    form: CheckedForm<PlaygroundForm>,
) -> PageResult {
    let PlaygroundForm { model, mut fields } = form.fields;
    fields.remove("csrf");
    // Form fields are text; the prediction inputs are typed: convert what looks like a number.
    let inputs: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| {
            let text = value.trim();
            let typed = if name == "venue" || name == "genre" {
                serde_json::Value::String(value)
            } else if let Ok(whole) = text.parse::<i64>() {
                serde_json::json!(whole)
            } else if let Ok(number) = text.parse::<f64>() {
                serde_json::json!(number)
            } else {
                serde_json::Value::String(value)
            };
            (name, typed)
        })
        .collect();
    let caller = crate::caller::AccountCaller {
        user_id: member.session.user_id,
        partner_id: None,
    };
    let body = serde_json::Value::Object(inputs);
    let result = match model.as_str() {
        "attendance_forecast" => match crate::predict::inputs(body) {
            Ok(form) => crate::predict::attendance(&state, &caller, form).await,
            Err(e) => Err(e),
        },
        "lead_scoring" => match crate::predict::inputs(body) {
            Ok(form) => crate::predict::lead(&state, &caller, form).await,
            Err(e) => Err(e),
        },
        _ => Err(crate::ApiError::not_found("this model has no playground")),
    };
    let outcome = PlaygroundOutcome {
        model,
        result: result.map_err(|e| e.detail),
    };
    models_page(
        &state,
        &member.visitor,
        member.session.user_id,
        Some(outcome),
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct EventQuery {
    #[serde(default)]
    event_type: String,
}

pub(crate) async fn events(
    State(state): State<AppState>,
    member: Member,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> PageResult {
    let Query(query) = query.unwrap_or_default();
    let filter = EventFilter {
        event_type: Some(query.event_type.trim().to_owned()).filter(|t| !t.is_empty()),
        limit: 50,
        ..EventFilter::default()
    };
    let events = state
        .store
        .as_user(member.session.user_id, async |t| t.events(&filter).await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let body = html! {
        form.filters method="get" action="/portal/events" {
            label for="event_type" { "Event type" }
            input #event_type type="text" name="event_type" value=(query.event_type);
            button type="submit" { "Filter" }
        }
        @if events.is_empty() {
            p { "No events yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Occurred" } th scope="col" { "Type" } th scope="col" { "Source" } th scope="col" { "Data" } } }
                    tbody {
                        @for event in &events {
                            tr {
                                td { (when(Some(event.occurred_at))) }
                                td { code { (event.event_type) } }
                                td { (event.source) }
                                td { code.data { (event.data.to_string()) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&member.visitor, "Events", "/portal/events", body).into_response())
}

pub(crate) async fn settings(State(state): State<AppState>, member: Member) -> PageResult {
    let partner = state
        .store
        .as_user(member.session.user_id, async |t| t.partner().await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    let name = partner.name.unwrap_or_default();
    let email = partner.email.unwrap_or_default();
    Ok(settings_page(&member.visitor, &name, &email, None).into_response())
}

fn settings_page(
    visitor: &super::Visitor,
    name: &str,
    email: &str,
    notice: Option<(bool, &str)>,
) -> Markup {
    let body = html! {
        @if let Some((ok, message)) = notice {
            p.notice.error[!ok] role=(if ok { "status" } else { "alert" }) { (message) }
        }
        form.card method="post" action="/portal/settings" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            label for="name" { "Company name" }
            input #name type="text" name="name" value=(name) required;
            label for="email" { "Contact email" }
            input #email type="email" name="email" value=(email) required aria-describedby="email-hint";
            p.hint #email-hint { "Where EPAI writes to you. You keep signing in with your account email." }
            button.primary type="submit" { "Save" }
        }
    };
    page(visitor, "Settings", "/portal/settings", body)
}

#[derive(Deserialize)]
pub struct SettingsFields {
    name: String,
    email: String,
}

pub(crate) async fn save_settings(
    State(state): State<AppState>,
    form: CheckedForm<SettingsFields>,
) -> PageResult {
    let CheckedForm { visitor, fields } = form;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let parsed = PartnerName::parse(fields.name.trim())
        .map_err(|e| e.to_string())
        .and_then(|name| {
            Email::parse(fields.email.trim())
                .map(|email| (name, email))
                .map_err(|e| e.to_string())
        });
    let (name, email) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => {
            let page = settings_page(
                &visitor,
                &fields.name,
                &fields.email,
                Some((false, &problem)),
            );
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let saved = state
        .store
        .as_user(session.user_id, async |t| {
            t.update_profile(&name, &email).await
        })
        .await;
    match saved {
        Ok(partner) => Ok(settings_page(
            &visitor,
            &partner.name.unwrap_or_default(),
            &partner.email.unwrap_or_default(),
            Some((true, "Saved.")),
        )
        .into_response()),
        Err(StoreError::Conflict(_)) => Ok((
            axum::http::StatusCode::CONFLICT,
            settings_page(
                &visitor,
                &fields.name,
                &fields.email,
                Some((false, "Another partner already uses this email.")),
            ),
        )
            .into_response()),
        Err(other) => Err(PageError::new(visitor, other)),
    }
}

/// The origin partners reach this server at, from the `Host` header the browser sent.
fn base_url(headers: &HeaderMap, secure: bool) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost:8080");
    let scheme = if secure { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub(crate) async fn guide(member: Member, headers: HeaderMap) -> Response {
    let base = base_url(&headers, member.visitor.secure);
    let curl = format!(
        "curl -X POST {base}/v1/events \\\n  -H \"apikey: $EPAI_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"event_type\": \"page_view\", \"data\": {{\"url\": \"/pricing\"}}, \"source\": \"web\", \"version\": \"1\"}}'"
    );
    let javascript = format!(
        "await fetch(\"{base}/v1/events\", {{\n  method: \"POST\",\n  headers: {{ apikey: process.env.EPAI_API_KEY, \"Content-Type\": \"application/json\" }},\n  body: JSON.stringify({{ event_type: \"page_view\", data: {{ url: \"/pricing\" }}, source: \"web\", version: \"1\" }}),\n}});"
    );
    let python = format!(
        "import os, requests\n\nrequests.post(\n    \"{base}/v1/events\",\n    headers={{\"apikey\": os.environ[\"EPAI_API_KEY\"]}},\n    json={{\"event_type\": \"page_view\", \"data\": {{\"url\": \"/pricing\"}}, \"source\": \"web\", \"version\": \"1\"}},\n)"
    );
    let token = format!(
        "curl -X POST {base}/v1/embed-tokens \\\n  -H \"apikey: $EPAI_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"origin\": \"https://your-site.example\", \"ttl_seconds\": 600}}'"
    );
    let widget = format!(
        "<script src=\"{base}/sdk/v1/epai.js\" defer></script>\n<epai-insight model=\"event_volume_forecast\" token=\"EMBED_TOKEN_FROM_YOUR_BACKEND\"\n  token-url=\"/your-backend/epai-embed-token\" show-confidence show-title></epai-insight>"
    );
    let verify_js = "const crypto = require(\"node:crypto\");\n\n// body: the raw request body as a string; secret: whsec_... from the webhook page\nfunction verifyWebhook(secret, headers, body, toleranceSeconds = 300) {\n  const id = headers[\"webhook-id\"], timestamp = headers[\"webhook-timestamp\"];\n  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) return false;\n  const key = Buffer.from(secret.slice(\"whsec_\".length), \"base64\");\n  const expected = crypto.createHmac(\"sha256\", key).update(`${id}.${timestamp}.${body}`).digest();\n  return headers[\"webhook-signature\"].split(\" \").some((signature) => {\n    const [version, value = \"\"] = signature.split(\",\");\n    const given = Buffer.from(value, \"base64\");\n    return version === \"v1\" && given.length === expected.length && crypto.timingSafeEqual(given, expected);\n  });\n}";
    let verify_python = "import base64, hashlib, hmac, time\n\n# body: the raw request body as bytes; secret: whsec_... from the webhook page\ndef verify_webhook(secret, headers, body, tolerance_seconds=300):\n    msg_id, timestamp = headers[\"webhook-id\"], headers[\"webhook-timestamp\"]\n    if abs(time.time() - int(timestamp)) > tolerance_seconds:\n        return False\n    key = base64.b64decode(secret.removeprefix(\"whsec_\"))\n    signed = f\"{msg_id}.{timestamp}.\".encode() + body\n    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()\n    return any(hmac.compare_digest(expected, signature[3:])\n               for signature in headers[\"webhook-signature\"].split() if signature.startswith(\"v1,\"))";
    let snippet = |id: &str, label: &str, code: &str| {
        html! {
            section.snippet {
                h2 { (label) }
                pre { code id=(id) { (code) } }
                button type="button" data-copy=(id) { "Copy " (label) }
            }
        }
    };
    let body = html! {
        p { "Send events from your backend with your API key; never put the key in a web page. Pages show insights with the widget and a short-lived embed token your backend mints." }
        (snippet("snippet-curl", "curl", &curl))
        (snippet("snippet-js", "JavaScript", &javascript))
        (snippet("snippet-python", "Python", &python))
        (snippet("snippet-token", "Embed token", &token))
        (snippet("snippet-widget", "Widget", &widget))
        p { "Webhooks (set them up under " a href="/portal/webhooks" { "Webhooks" } ") POST each new or updated insight to your endpoint. Verify the signature on the raw body and deduplicate on the message id before acting on it:" }
        (snippet("snippet-verify-js", "Verify a webhook (Node.js)", verify_js))
        (snippet("snippet-verify-python", "Verify a webhook (Python)", verify_python))
    };
    page(&member.visitor, "Integration guide", "/portal/guide", body).into_response()
}
