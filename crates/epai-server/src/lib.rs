//! EPAI's HTTP face: the axum router, the extractors that turn a credential into a tenant
//! context, the one error type that becomes `application/problem+json`, and middleware.
//!
//! Must not write SQL: every database access goes through `epai-store`'s tenant-scoped or
//! service-role handles.

mod accounts;
mod error;
mod health;
mod json;
mod password;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use epai_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use accounts::AccountSettings;
pub use error::{ApiError, ErrorCode};
pub use json::ApiJson;
pub use session::{JwtKeys, SESSION_COOKIE, SessionClaims, SessionUser, WeakJwtSecret};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Signs and verifies portal session tokens.
    pub jwt: Arc<JwtKeys>,
    pub accounts: AccountSettings,
}

/// The whole HTTP surface, without a socket, so tests and `serve` share it.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(accounts::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(TraceLayer::new_for_http())
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
