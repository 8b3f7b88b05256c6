//! The webhooks pages: register an endpoint (its secret shown once), follow its deliveries,
//! send a test, rotate the secret, switch it off or on, delete it. They use the same logic as
//! `/v1/webhooks`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use epai_domain::WebhookEventType;
use epai_store::{DeliveryRecord, WebhookRecord};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{PageError, page, when};
use super::{CheckedForm, Member, NoFields, Visitor};
use crate::AppState;
use crate::observe::ClientInfo;
use crate::webhooks::{self as logic, UpdateWebhook, WebhookInput};

type PageResult = Result<Response, PageError>;
const SECTION: &str = "/portal/webhooks";
const DELIVERIES_SHOWN: i64 = 25;

/// The notice a webhook EPAI switched off carries, on its page and the dashboard.
pub(crate) fn disabled_notice(webhook: &WebhookRecord) -> Option<String> {
    webhook.disabled_for_failures().then(|| {
        format!(
            "EPAI switched this webhook off on {}: every delivery failed since {}. Fix the endpoint, then switch it on again.",
            when(webhook.disabled_at),
            when(webhook.failing_since)
        )
    })
}

fn event_label(kind: WebhookEventType) -> &'static str {
    match kind {
        WebhookEventType::InsightCreated => "New insights",
        WebhookEventType::InsightUpdated => "Updated insights",
        WebhookEventType::ApiKeyExpiring => "API key about to expire",
        WebhookEventType::Test => "Test messages",
    }
}

fn field_name(kind: WebhookEventType) -> &'static str {
    match kind {
        WebhookEventType::InsightCreated => "insight_created",
        WebhookEventType::InsightUpdated => "insight_updated",
        WebhookEventType::ApiKeyExpiring => "api_key_expiring",
        WebhookEventType::Test => "test",
    }
}

/// The event type checkboxes, ticked as `selected` says.
fn event_checkboxes(selected: &[WebhookEventType]) -> Markup {
    html! {
        fieldset {
            legend { "Events" }
            @for kind in WebhookEventType::SUBSCRIBABLE {
                label.check {
                    input type="checkbox" name=(field_name(kind)) value="on" checked[selected.contains(&kind)];
                    " " (event_label(kind)) " " code { (kind.as_str()) }
                }
            }
        }
    }
}

fn status_text(webhook: &WebhookRecord) -> &'static str {
    if webhook.enabled {
        if webhook.failing_since.is_some() {
            "On, failing"
        } else {
            "On"
        }
    } else if webhook.disabled_for_failures() {
        "Switched off by EPAI"
    } else {
        "Off"
    }
}

fn list_page(
    visitor: &Visitor,
    webhooks: &[WebhookRecord],
    problem: Option<&str>,
    entered: Option<&WebhookForm>,
) -> Markup {
    let selected: Vec<WebhookEventType> = match entered {
        Some(form) => form.event_types(),
        None => WebhookEventType::DEFAULT.to_vec(),
    };
    let body = html! {
        p { "EPAI sends new and updated insights to your endpoints as they happen, signed as Standard Webhooks (" code { "webhook-id" } ", " code { "webhook-timestamp" } ", " code { "webhook-signature" } "). The integration guide shows how to verify them." }
        @for webhook in webhooks {
            @if let Some(notice) = disabled_notice(webhook) {
                p.notice.warning role="status" { (notice) " " a href={ "/portal/webhooks/" (webhook.id) } { "Open it" } }
            }
        }
        @if webhooks.is_empty() {
            p { "No webhooks yet." }
        } @else {
            div.table-wrap {
                table #webhooks {
                    thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Events" } th scope="col" { "Status" } th scope="col" { "Last success" } } }
                    tbody {
                        @for webhook in webhooks {
                            tr {
                                td { a href={ "/portal/webhooks/" (webhook.id) } { code { (webhook.url) } } @if let Some(d) = &webhook.description { br; span.hint { (d) } } }
                                td { (webhook.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (status_text(webhook)) }
                                td { (when(webhook.last_success_at)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add an endpoint" }
        @if let Some(problem) = problem {
            p.notice.error role="alert" { (problem) }
        }
        form.card method="post" action="/portal/webhooks" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            label for="url" { "URL" }
            input #url type="url" name="url" required placeholder="https://example.com/epai-webhooks" value=[entered.map(|f| f.url.as_str())];
            label for="description" { "Description (optional)" }
            input #description type="text" name="description" maxlength="200" value=[entered.and_then(|f| f.description.as_deref())];
            (event_checkboxes(&selected))
            button.primary #add-webhook type="submit" { "Add webhook" }
        }
    };
    page(visitor, "Webhooks", SECTION, body)
}

pub(crate) async fn list(State(state): State<AppState>, member: Member) -> PageResult {
    let webhooks = state
        .store
        .as_user(member.session.user_id, async |t| t.webhooks().await)
        .await
        .map_err(|e| PageError::new(member.visitor.clone(), e))?;
    Ok(list_page(&member.visitor, &webhooks, None, None).into_response())
}

/// What the add and edit forms post.
#[derive(Deserialize)]
pub struct WebhookForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    insight_created: Option<String>,
    #[serde(default)]
    insight_updated: Option<String>,
    #[serde(default)]
    api_key_expiring: Option<String>,
    /// Only the edit form has it.
    #[serde(default)]
    enabled: Option<String>,
}

impl WebhookForm {
    fn event_types(&self) -> Vec<WebhookEventType> {
        [
            (WebhookEventType::InsightCreated, &self.insight_created),
            (WebhookEventType::InsightUpdated, &self.insight_updated),
            (WebhookEventType::ApiKeyExpiring, &self.api_key_expiring),
        ]
        .into_iter()
        .filter(|(_, ticked)| ticked.is_some())
        .map(|(kind, _)| kind)
        .collect()
    }

    fn event_type_names(&self) -> Vec<String> {
        self.event_types()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect()
    }
}

fn client_of(client: Option<axum::Extension<ClientInfo>>) -> Option<ClientInfo> {
    client.map(|c| c.0)
}

/// The new webhook's secret, on this page only.
fn secret_page(visitor: &Visitor, webhook: &WebhookRecord, secret: &str, title: &str) -> Markup {
    let body = html! {
        p.notice.warning role="status" { "Copy the signing secret now: it will not be shown again." }
        div.secret {
            code #new-secret { (secret) }
            button type="button" data-copy="new-secret" { "Copy" }
        }
        dl.facts {
            dt { "Endpoint" } dd { code { (webhook.url) } }
            @if let Some(until) = webhook.previous_secret_expires_at {
                dt { "Previous secret" } dd { "keeps signing beside the new one until " (when(Some(until))) }
            }
        }
        p { a href={ "/portal/webhooks/" (webhook.id) } { "Done" } }
    };
    page(visitor, title, SECTION, body)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientInfo>>,
    form: CheckedForm<WebhookForm>,
) -> PageResult {
    let CheckedForm { visitor, fields } = form;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let input = WebhookInput {
        url: fields.url.trim().to_owned(),
        event_types: Some(fields.event_type_names()),
        description: fields.description.clone(),
        enabled: Some(true),
    };
    match logic::create(&state, session.user_id, client_of(client), input).await {
        Ok((webhook, secret)) => {
            Ok(secret_page(&visitor, &webhook, &secret.expose(), "Webhook added").into_response())
        }
        Err(error) if error.status.is_client_error() => {
            let webhooks = state
                .store
                .as_user(session.user_id, async |t| t.webhooks().await)
                .await
                .map_err(|e| PageError::new(visitor.clone(), e))?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                list_page(&visitor, &webhooks, Some(&error.detail), Some(&fields)),
            )
                .into_response())
        }
        Err(error) => Err(PageError::new(visitor, error)),
    }
}

fn deliveries_table(deliveries: &[DeliveryRecord]) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p { "Nothing delivered yet." }
        } @else {
            div.table-wrap {
                table #deliveries {
                    caption.visually-hidden { "Deliveries, newest first" }
                    thead { tr { th scope="col" { "Queued" } th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Response" } th scope="col" { "Latency" } th scope="col" { "Next attempt / error" } } }
                    tbody {
                        @for delivery in deliveries {
                            tr {
                                td { (when(Some(delivery.created_at))) }
                                td { code { (delivery.event_type.as_str()) } }
                                td.status { (serde_json::to_value(delivery.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                                td { (delivery.attempts) " of " (delivery.max_attempts) }
                                td { (delivery.response_status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                                td { (delivery.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default()) }
                                td {
                                    @if let Some(next) = delivery.next_attempt_at { "next " (when(Some(next))) " " }
                                    (delivery.error.clone().unwrap_or_default())
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn detail_page(
    state: &AppState,
    visitor: &Visitor,
    user: epai_domain::AuthUserId,
    client: Option<ClientInfo>,
    id: Uuid,
    notice: Option<(bool, &str)>,
) -> PageResult {
    let webhook = logic::find(state, user, client.clone(), id)
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    let deliveries = logic::deliveries(state, user, client, id, None, DELIVERIES_SHOWN)
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    let action = |suffix: &str| format!("/portal/webhooks/{id}{suffix}");
    let body = html! {
        @if let Some((ok, message)) = notice {
            p.notice.error[!ok] role=(if ok { "status" } else { "alert" }) { (message) }
        }
        @if let Some(warning) = disabled_notice(&webhook) {
            p.notice.warning #disabled-notice role="status" { (warning) }
        }
        dl.facts {
            dt { "Endpoint" } dd { code #webhook-url { (webhook.url) } }
            dt { "Status" } dd #webhook-status { (status_text(&webhook)) }
            dt { "Last success" } dd { (when(webhook.last_success_at)) }
            dt { "Failing since" } dd { (when(webhook.failing_since)) }
            dt { "Secret rotated" } dd { (when(webhook.secret_rotated_at)) }
            @if let Some(until) = webhook.previous_secret_expires_at {
                dt { "Previous secret signs until" } dd { (when(Some(until))) }
            }
        }
        div.actions {
            form method="post" action=(action("/test")) {
                input type="hidden" name="csrf" value=(visitor.csrf);
                button #send-test type="submit" { "Send a test message" }
            }
            form method="post" action=(action("/rotate-secret")) {
                input type="hidden" name="csrf" value=(visitor.csrf);
                button #rotate-secret type="submit" { "Rotate the secret" }
            }
        }
        h2 { "Deliveries" }
        (deliveries_table(&deliveries))
        h2 { "Settings" }
        form.card method="post" action=(action("")) {
            input type="hidden" name="csrf" value=(visitor.csrf);
            label for="url" { "URL" }
            input #url type="url" name="url" required value=(webhook.url);
            label for="description" { "Description" }
            input #description type="text" name="description" maxlength="200" value=[webhook.description.as_deref()];
            (event_checkboxes(&webhook.event_types))
            label.check { input #enabled type="checkbox" name="enabled" value="on" checked[webhook.enabled]; " Deliver messages to this endpoint" }
            button.primary #save-webhook type="submit" { "Save" }
        }
        form method="post" action=(action("/delete")) {
            input type="hidden" name="csrf" value=(visitor.csrf);
            button.danger #delete-webhook type="submit" { "Delete this webhook" }
        }
        p { a href=(SECTION) { "All webhooks" } }
    };
    Ok(visitor.respond(page(visitor, "Webhook", SECTION, body)))
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    member: Member,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
) -> PageResult {
    let id = logic::webhook_id(&id).map_err(|e| PageError::new(member.visitor.clone(), e))?;
    detail_page(
        &state,
        &member.visitor,
        member.session.user_id,
        client_of(client),
        id,
        None,
    )
    .await
}

pub(crate) async fn save(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    form: CheckedForm<WebhookForm>,
) -> PageResult {
    let CheckedForm { visitor, fields } = form;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let id = logic::webhook_id(&id).map_err(|e| PageError::new(visitor.clone(), e))?;
    let change = UpdateWebhook {
        url: Some(fields.url.trim().to_owned()),
        event_types: Some(fields.event_type_names()),
        description: Some(fields.description.clone()),
        enabled: Some(fields.enabled.is_some()),
    };
    let client = client_of(client);
    match logic::update(&state, session.user_id, client.clone(), id, change).await {
        Ok(_) => {
            detail_page(
                &state,
                &visitor,
                session.user_id,
                client,
                id,
                Some((true, "Saved.")),
            )
            .await
        }
        Err(error) if error.status.is_client_error() && error.status != StatusCode::NOT_FOUND => {
            let page = detail_page(
                &state,
                &visitor,
                session.user_id,
                client,
                id,
                Some((false, &error.detail)),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(error) => Err(PageError::new(visitor, error)),
    }
}

pub(crate) async fn send_test(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    form: CheckedForm<NoFields>,
) -> PageResult {
    let visitor = form.visitor;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let id = logic::webhook_id(&id).map_err(|e| PageError::new(visitor.clone(), e))?;
    let client = client_of(client);
    logic::send_test(&state, session.user_id, client.clone(), id)
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    detail_page(
        &state,
        &visitor,
        session.user_id,
        client,
        id,
        Some((
            true,
            "A test message is on its way: reload to see how it went.",
        )),
    )
    .await
}

pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    form: CheckedForm<NoFields>,
) -> PageResult {
    let visitor = form.visitor;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let id = logic::webhook_id(&id).map_err(|e| PageError::new(visitor.clone(), e))?;
    let grace = state.settings.webhooks.secret_grace;
    let (webhook, secret) = logic::rotate(&state, session.user_id, client_of(client), id, grace)
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    Ok(secret_page(&visitor, &webhook, &secret.expose(), "New signing secret").into_response())
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientInfo>>,
    Path(id): Path<String>,
    form: CheckedForm<NoFields>,
) -> PageResult {
    let visitor = form.visitor;
    let Some(session) = visitor.session else {
        return Ok(Redirect::to("/portal/login?expired=1").into_response());
    };
    let id = logic::webhook_id(&id).map_err(|e| PageError::new(visitor.clone(), e))?;
    logic::delete(&state, session.user_id, client_of(client), id)
        .await
        .map_err(|e| PageError::new(visitor.clone(), e))?;
    Ok(Redirect::to(SECTION).into_response())
}
