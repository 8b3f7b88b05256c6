//! The OpenAPI document, generated from the handlers' annotations, and an offline page that
//! renders it (`/docs`, no external assets).

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    accounts, custom_models, embed, error, health, ingest, keys, predict, reads, stream, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EPAI API",
        description = "Send product events, read predictive insights. Errors are RFC 9457 \
            problem details with a `code`. Every API response carries RateLimit-Policy, \
            RateLimit and X-RateLimit-* headers.",
    ),
    paths(
        accounts::signup,
        accounts::token,
        accounts::logout,
        accounts::current_user,
        health::health,
        health::ready,
        ingest::post_event,
        ingest::post_batch,
        reads::list_events,
        reads::list_insights,
        reads::get_insight,
        stream::insights,
        reads::list_models,
        reads::usage,
        reads::logs,
        embed::mint,
        predict::predict,
        predict::original_predict,
        keys::status,
        keys::regenerate,
        webhooks::list,
        webhooks::create_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::rotate_secret,
        webhooks::test_webhook,
        webhooks::list_deliveries,
        ingest::post_ingest_original,
        ingest::post_ingest_v2,
        reads::original_insights,
        reads::original_models,
        reads::original_public_insight,
        keys::original_status,
        keys::original_regenerate,
        keys::original_usage_stats,
        keys::original_partner_logs,
    ),
    components(schemas(
        error::Problem,
        epai_domain::FieldError,
        predict::ForecastRequest,
        predict::AttendanceForm,
        predict::LeadForm,
        custom_models::CustomModelRequest,
    )),
    modifiers(&Credentials),
    tags(
        (name = "events", description = "Ingest and list events"),
        (name = "insights", description = "Predictions computed from the partner's events"),
        (name = "models", description = "The model catalogue"),
        (name = "usage", description = "Daily usage"),
        (name = "logs", description = "The partner's request log"),
        (name = "keys", description = "The partner's API key (portal session)"),
        (name = "webhooks", description = "Insight webhooks: endpoints, signing secrets, deliveries (Standard Webhooks)"),
        (name = "original paths", description = "Paths of the original deployment, kept for existing integrations"),
        (name = "accounts", description = "Portal accounts and sessions (GoTrue-compatible)"),
        (name = "operations", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apikey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "apikey",
                "The partner's API key (`epai_...`); also accepted as `x-api-key` or `Authorization: Bearer`.",
            ))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub async fn spec() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub async fn docs_page() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, DOCS_CSP)],
        Html(include_str!("assets/docs.html")),
    )
}

pub async fn docs_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/docs.js"),
    )
}

const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";
