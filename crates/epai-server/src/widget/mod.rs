//! The insight widget served to partners' pages: `GET /sdk/v1/epai.js` (any origin may load
//! it) and a demo page at `/sdk/v1/demo` whose script is a separate file.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use maud::{DOCTYPE, html};

use crate::AppState;

const SDK: &str = include_str!("epai.js");
const DEMO_SCRIPT: &str = include_str!("demo.js");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sdk/v1/epai.js", get(sdk))
        .route(
            "/sdk/v1/demo",
            get(demo).layer(axum::middleware::map_response(
                crate::portal::content_security_policy,
            )),
        )
        .route("/sdk/v1/demo.js", get(demo_script))
}

fn javascript(body: &'static str) -> impl IntoResponse {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        body,
    )
}

async fn sdk() -> impl IntoResponse {
    javascript(SDK)
}

async fn demo_script() -> impl IntoResponse {
    javascript(DEMO_SCRIPT)
}

async fn demo() -> impl IntoResponse {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "EPAI widget demo" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                // Deferred scripts run in order: the demo sets the widgets' attributes before
                // the SDK upgrades them.
                script src="/sdk/v1/demo.js" defer {}
                script src="/sdk/v1/epai.js" defer {}
            }
            body {
                main #main {
                    h1 { "EPAI widget demo" }
                    p { "Open this page with " code { "?insight-id=…&token=…" } " (an embed token from " code { "POST /v1/embed-tokens" } ")." }
                    h2 { "Light" }
                    epai-insight #light show-confidence show-title {}
                    h2 { "Dark, compact" }
                    epai-insight #dark theme="dark" compact show-title {}
                    h2 { "Events" }
                    ul #events {}
                }
            }
        }
    };
    page
}
