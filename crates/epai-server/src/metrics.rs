//! `GET /metrics`: Prometheus text format. Request counts and latencies by route and status
//! come from the observe middleware; ingest and pool figures are read at scrape time.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// The process-wide recorder (metrics are global by design; several servers in one process,
/// as in tests, share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("epai_ingest_commit_rows".into()),
                    &[
                        1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
                    ],
                )
            })
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        handle
    })
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.store.pool_status();
    metrics::gauge!("epai_db_pool_max_connections").set(pool.max_size as f64);
    metrics::gauge!("epai_db_pool_connections").set(pool.size as f64);
    metrics::gauge!("epai_db_pool_idle_connections").set(pool.available as f64);
    metrics::gauge!("epai_db_pool_waiting_requests").set(pool.waiting as f64);
    metrics::gauge!("epai_ingest_queue_depth").set(state.ingest.queue_depth() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}
