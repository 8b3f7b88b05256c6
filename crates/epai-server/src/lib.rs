//! EPAI's HTTP face: the axum router, the extractors that turn a credential into a tenant
//! context, the one error type that becomes `application/problem+json`, and middleware.
//!
//! Must not write SQL: every database access goes through `epai-store`'s tenant-scoped or
//! service-role handles.

mod accounts;
mod auth;
mod caller;
mod custom_models;
mod embed;
mod error;
mod extract;
mod health;
mod ingest;
mod keys;
mod metrics;
mod observe;
mod openapi;
mod password;
mod portal;
mod predict;
pub mod rate_limit;
mod read_cache;
mod reads;
mod redact;
mod session;
mod stream;
mod webhooks;
mod widget;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::routing::{get, patch, post};
use epai_domain::EventLimits;
use epai_store::notify::Notification;
use epai_store::{ActivityRecorder, IngestOptions, IngestWriter, Store};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

pub use accounts::AccountSettings;
pub use auth::KeyVerifier;
pub use error::{ApiError, ErrorCode};
pub use observe::ClientInfo;
pub use openapi::ApiDoc;
pub use password::hash_password;
use rate_limit::{Quota, RateLimitError, RateLimitSettings, RateLimiter};
use read_cache::ReadCache;
pub use read_cache::ReadCacheSettings;
pub use session::{JwtKeys, SESSION_COOKIE, SessionClaims, SessionUser, WeakJwtSecret};
use stream::{FeedPublisher, InsightFeed};
pub use webhooks::WebhookSettings;

/// Every parser of untrusted input the handlers run, exported as they are so the fuzz targets
/// in `fuzz/` exercise the very code that requests reach.
pub mod parsing {
    pub use crate::auth::{bearer, presented_key};
    pub use crate::caller::query_access_token;
    pub use crate::embed::{EMBED_AUDIENCE, EmbedClaims, EmbedTokenRequest, parse_origin};
    pub use crate::extract::{describe_without_values, parse_json, parse_query};
    pub use crate::ingest::{EventBody, IntegrationGuideEvent, batch, idempotency_key, one_event};
    pub use crate::observe::{client_ip, has_credentials};
    pub use crate::portal::{
        Credentials, CsrfField, EventQuery, LogQuery, LoginNotice, NoFields, PlaygroundForm,
        SettingsFields, SignupFields, ThemeChoice, WebhookForm, cookie,
    };
    pub use crate::predict::{AttendanceForm, ForecastRequest, LeadForm, forecast};
    pub use crate::reads::{
        EventsQuery, InsightsQuery, LogsQuery, ModelsPage, OriginalPage, PublicInsightRequest,
        UsageQuery, decode_cursor,
    };
    pub use crate::redact::{loggable_body, mask};
    pub use crate::session::presented_token;
    pub use crate::webhooks::{
        CreateWebhook, DeliveriesQuery, RotateSecret, UpdateWebhook, webhook_id,
    };
}

/// Limits and knobs of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub event_limits: EventLimits,
    /// Largest request body accepted by any endpoint (the batch limit).
    pub max_body_bytes: usize,
    /// Largest body of a single-event request.
    pub max_event_body_bytes: usize,
    pub request_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Bodies larger than this are logged as a size note only.
    pub log_body_bytes: usize,
    pub ingest: IngestOptions,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// How often coalesced `last_used_at` updates are written.
    pub key_use_flush_interval: Duration,
    pub rate_limits: RateLimitSettings,
    pub accounts: AccountSettings,
    /// How often an idle insight stream sends a comment line, so connections and proxies
    /// keep it open.
    pub stream_heartbeat: Duration,
    pub webhooks: WebhookSettings,
    pub read_cache: ReadCacheSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            event_limits: EventLimits::default(),
            max_body_bytes: 5 * 1024 * 1024,
            max_event_body_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            log_body_bytes: 4096,
            ingest: IngestOptions::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            key_use_flush_interval: Duration::from_secs(5),
            rate_limits: RateLimitSettings {
                per_key: Quota::per_minute(rate_limit::DEFAULT_PER_KEY),
                per_ip: Quota::per_minute(rate_limit::DEFAULT_PER_IP),
                redis_url: None,
            },
            accounts: AccountSettings::default(),
            stream_heartbeat: Duration::from_secs(15),
            webhooks: WebhookSettings::default(),
            read_cache: ReadCacheSettings::default(),
        }
    }
}

/// What every handler can reach. Every request takes a copy, so a copy is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

pub struct SharedState {
    pub store: Store,
    pub ingest: IngestWriter,
    pub activity: ActivityRecorder,
    pub keys: Arc<KeyVerifier>,
    pub limiter: RateLimiter,
    /// Signs and verifies portal session tokens.
    pub jwt: Arc<JwtKeys>,
    pub settings: Arc<ServerSettings>,
    /// Insight changes for live streams.
    pub insights: InsightFeed,
    /// Insight pages and usage summaries read recently.
    pub reads: Arc<ReadCache>,
    /// Custom ONNX models compiled by this replica.
    pub custom_models: custom_models::CustomModelCache,
}

/// The background work behind a running server: group-commit writers, the activity writer,
/// key-use flushing, cache invalidation and the feed of insight changes for live streams.
pub struct Background {
    ingest_writers: JoinSet<()>,
    activity_writer: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    stop_maintenance: watch::Sender<bool>,
    listener: JoinHandle<()>,
}

/// Starts the background tasks and returns the state handlers share. Fails only on a malformed
/// rate-limit configuration (the Redis URL).
pub fn start(
    store: Store,
    settings: ServerSettings,
    jwt: JwtKeys,
) -> Result<(AppState, Background), RateLimitError> {
    let limiter = settings.rate_limits.limiter()?;
    Ok(start_with_limiter(store, settings, jwt, limiter))
}

/// [`start`] with a given limiter (tests use one on a manual clock).
pub fn start_with_limiter(
    store: Store,
    settings: ServerSettings,
    jwt: JwtKeys,
    limiter: RateLimiter,
) -> (AppState, Background) {
    metrics::handle();
    let settings = Arc::new(settings);
    let (ingest, ingest_writers) = IngestWriter::start(store.clone(), settings.ingest);
    let (activity, activity_writer) = ActivityRecorder::start(store.clone());
    let keys = Arc::new(KeyVerifier::default());
    let (stop_maintenance, stopped) = watch::channel(false);
    let maintenance = tokio::spawn(maintain(
        store.clone(),
        keys.clone(),
        settings.clone(),
        stopped,
    ));
    let (notifications, received) = mpsc::channel(256);
    let (insights, feed) = InsightFeed::new();
    let reads = Arc::new(ReadCache::new(settings.read_cache));
    let listener = tokio::spawn({
        let store = store.clone();
        let keys = keys.clone();
        let reads = reads.clone();
        async move {
            tokio::join!(
                store.listen(notifications),
                apply_notifications(received, keys, reads, feed)
            );
        }
    });
    let state = AppState(Arc::new(SharedState {
        store,
        ingest,
        activity,
        keys,
        limiter,
        jwt: Arc::new(jwt),
        settings,
        insights,
        reads,
        custom_models: custom_models::CustomModelCache::default(),
    }));
    let background = Background {
        ingest_writers,
        activity_writer,
        maintenance,
        stop_maintenance,
        listener,
    };
    (state, background)
}

async fn apply_notifications(
    mut received: mpsc::Receiver<Notification>,
    keys: Arc<KeyVerifier>,
    reads: Arc<ReadCache>,
    feed: FeedPublisher,
) {
    while let Some(notification) = received.recv().await {
        match notification {
            Notification::ApiKeyChanged(partner) => keys.forget_partner(partner),
            // Before the streams: whoever hears of the insight can read it.
            Notification::InsightChanged { partner, insight } => {
                reads.insight_changed(partner);
                feed.changed(partner, insight);
            }
            Notification::Resubscribed => {
                keys.forget_all();
                reads.resume();
                feed.resubscribed();
            }
            Notification::Unsubscribed => reads.pause(),
            // Workers listen for those themselves.
            Notification::JobsAvailable | Notification::DeliveriesAvailable => {}
        }
    }
}

/// Periodic upkeep: coalesced `last_used_at` writes and expiry of old idempotency keys.
async fn maintain(
    store: Store,
    keys: Arc<KeyVerifier>,
    settings: Arc<ServerSettings>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(settings.key_use_flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = stopped.changed() => true,
        };
        flush_key_uses(&store, &keys).await;
        if stopping {
            return;
        }
        let ttl = settings.idempotency_ttl;
        if let Err(e) = store
            .as_service_role(async |s| s.expire_idempotency_keys(ttl).await)
            .await
        {
            tracing::warn!(error = %e, "could not expire idempotency keys");
        }
    }
}

async fn flush_key_uses(store: &Store, keys: &KeyVerifier) {
    let uses = keys.take_uses();
    if uses.is_empty() {
        return;
    }
    if let Err(e) = store
        .as_service_role(async |s| s.touch_api_keys(&uses).await)
        .await
    {
        tracing::warn!(error = %e, keys = uses.len(), "could not record key use");
    }
}

impl Background {
    /// Waits until everything accepted is stored. Call after the server stopped serving (so no
    /// handler holds a writer any more).
    pub async fn shutdown(mut self) {
        let _ = self.stop_maintenance.send(true);
        let _ = self.maintenance.await;
        while self.ingest_writers.join_next().await.is_some() {}
        let _ = self.activity_writer.await;
        self.listener.abort();
    }
}

/// The whole HTTP surface, without a socket, so tests and `serve` share it.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let ingest_single = Router::new()
        .route("/v1/events", post(ingest::post_event))
        .route("/ingest", post(ingest::post_ingest_original))
        .route("/functions/v1/ingest", post(ingest::post_ingest_original))
        .route("/ingest-v2", post(ingest::post_ingest_v2))
        .route("/functions/v1/ingest-v2", post(ingest::post_ingest_v2))
        .layer(DefaultBodyLimit::max(settings.max_event_body_bytes));
    let api = Router::new()
        .route("/v1/events", get(reads::list_events))
        .route("/v1/events/batch", post(ingest::post_batch))
        .route("/v1/models", get(reads::list_models))
        .route("/v1/usage", get(reads::usage))
        .route("/v1/logs", get(reads::logs))
        .route("/v1/embed-tokens", post(embed::mint))
        .route("/v1/models/{name}/predict", post(predict::predict))
        .route("/predict", post(predict::original_predict))
        .route("/functions/v1/predict", post(predict::original_predict))
        .route("/v1/api-key", get(keys::status).post(keys::regenerate))
        .route(
            "/v1/webhooks",
            get(webhooks::list).post(webhooks::create_webhook),
        )
        .route(
            "/v1/webhooks/{id}",
            patch(webhooks::update_webhook).delete(webhooks::delete_webhook),
        )
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/v1/webhooks/{id}/test", post(webhooks::test_webhook))
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route(
            "/api-key-manager",
            get(keys::original_status).post(keys::original_regenerate),
        )
        .route(
            "/functions/v1/api-key-manager",
            get(keys::original_status).post(keys::original_regenerate),
        )
        .route("/get-usage-stats", post(keys::original_usage_stats))
        .route(
            "/functions/v1/get-usage-stats",
            post(keys::original_usage_stats),
        )
        .route("/get-partner-logs", post(keys::original_partner_logs))
        .route(
            "/functions/v1/get-partner-logs",
            post(keys::original_partner_logs),
        )
        .route(
            "/get-models",
            get(reads::original_models).post(reads::original_models),
        )
        .route(
            "/functions/v1/get-models",
            get(reads::original_models).post(reads::original_models),
        )
        .layer(DefaultBodyLimit::max(settings.max_body_bytes));
    // Read by widgets on partners' pages: any origin may call them (embed tokens carry their own
    // origin restriction); credentials travel in headers, never in cookies.
    let public_reads = Router::new()
        .route("/v1/insights", get(reads::list_insights))
        .route("/v1/insights/stream", get(stream::insights))
        .route("/v1/insights/{id}", get(reads::get_insight))
        .route("/get-insights", get(reads::original_insights))
        .route("/functions/v1/get-insights", get(reads::original_insights))
        .route("/get-public-insight", post(reads::original_public_insight))
        .route(
            "/functions/v1/get-public-insight",
            post(reads::original_public_insight),
        )
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("apikey"),
                    HeaderName::from_static("last-event-id"),
                ])
                .max_age(Duration::from_secs(3600)),
        )
        .layer(DefaultBodyLimit::max(settings.max_event_body_bytes));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::spec))
        .route("/docs", get(openapi::docs_page))
        .route("/docs/docs.js", get(openapi::docs_script))
        .merge(ingest_single)
        .merge(api)
        .merge(public_reads)
        .merge(accounts::routes())
        .merge(portal::routes())
        .merge(widget::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal(
                "a request handler panicked",
            ))
        }))
        // Spans name the path only: the stream's query string may carry an embed token.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
            },
        ))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then finishes in-flight
/// requests before returning.
pub async fn serve_with_listener(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tokio::task::spawn_blocking(password::prepare);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
