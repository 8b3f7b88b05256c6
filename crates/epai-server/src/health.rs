use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::{ApiError, AppState};

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process answers. Says nothing about the database.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    status: &'static str,
    migration: i32,
}

/// Readiness: the database answers and carries exactly the migrations this binary expects.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let status = state.store.migration_status().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::unavailable("the database is not reachable")
    })?;
    if status.is_current() {
        Ok(Json(Readiness {
            status: "ready",
            migration: status.expected,
        }))
    } else {
        Err(ApiError::unavailable(format!(
            "database schema is at migration {}, this server needs {}; run `epai migrate`",
            status
                .applied
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            status.expected
        )))
    }
}
