//! The outermost middleware: who is calling (IP, user agent), body size and time limits,
//! security headers, and the request log written to `logs` after every request.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::{Body, HttpBody, to_bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use epai_domain::PartnerId;
use epai_store::{LoggedBody, RequestLog};

use crate::auth::limit_ip;
use crate::error::{ApiError, ErrorCode};
use crate::extract::too_large;
use crate::rate_limit::Decision;
use crate::{AppState, redact};

/// The caller as the network sees it; available to every handler and extractor.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// Filled in by the credential extractors so the request log names the partner.
    pub partner: Arc<OnceLock<PartnerId>>,
    /// The last rate-limit decision about this request, reported in the response headers.
    rate_limit: Arc<Mutex<Option<Decision>>>,
}

impl ClientInfo {
    pub fn note_rate_limit(&self, decision: Decision) {
        if let Ok(mut slot) = self.rate_limit.lock() {
            *slot = Some(decision);
        }
    }

    fn rate_limit(&self) -> Option<Decision> {
        self.rate_limit.lock().ok().and_then(|slot| slot.clone())
    }

    pub fn ip_text(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

/// Paths whose traffic is operational noise, not partner activity.
fn is_probe(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/ready" | "/metrics" | "/openapi.json" | "/docs" | "/docs/docs.js"
    )
}

pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let settings = state.settings.clone();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = ClientInfo {
        ip: client_ip(peer, request.headers(), &settings.trusted_proxies),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
        partner: Arc::new(OnceLock::new()),
        rate_limit: Arc::new(Mutex::new(None)),
    };
    let anonymous = !has_credentials(request.headers());
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    // Layers on the router run after routing, so the route template is known here.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |m| m.as_str().to_owned());
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(client.clone());

    let (response, request_bytes) = match to_bytes(body, settings.max_body_bytes).await {
        Err(_) => (too_large().into_response(), None),
        Ok(bytes)
            if anonymous
                && !is_probe(&path)
                && let Err(limited) = limit_ip(&state, &client).await =>
        {
            (limited.into_response(), Some(bytes))
        }
        Ok(bytes) => {
            let request = Request::from_parts(parts, Body::from(bytes.clone()));
            let response =
                match tokio::time::timeout(settings.request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => {
                        let mut timeout = ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::Timeout,
                            "the request took too long and was abandoned; retry shortly",
                        );
                        timeout.retry_after_seconds = Some(1);
                        timeout.into_response()
                    }
                };
            (response, Some(bytes))
        }
    };
    let mut response = response;
    secure_headers(response.headers_mut());
    if let Some(decision) = client.rate_limit() {
        decision.write_headers(response.headers_mut());
    }

    if is_probe(&path) {
        return response;
    }
    // Metrics are labelled by route template (bounded cardinality), logs keep the real path.
    let status = response.status().as_u16().to_string();
    metrics::counter!("epai_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("epai_http_request_duration_seconds", "route" => route, "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    let (response, response_body) = if is_successful_read(&method, response.status()) {
        let response_body = redact::size_note(response.body().size_hint().exact());
        (response, response_body)
    } else {
        capture_json_body(response, settings.log_body_bytes).await
    };
    state.activity.request(RequestLog {
        partner_id: client.partner.get().copied(),
        endpoint: path.chars().take(512).collect(),
        method,
        status: i32::from(response.status().as_u16()),
        duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
        request_body: request_bytes
            .as_deref()
            .and_then(|b| redact::loggable_body(b, settings.log_body_bytes)),
        response_body,
        ip_address: client.ip_text(),
        user_agent: client.user_agent.clone(),
        created_at: chrono::Utc::now(),
    });
    response
}

/// A successful read's answer is the partner's own stored data: its log row records only its
/// size, so polling dashboards and widgets do not copy insights and usage into `logs` (and
/// their answers are not buffered to be logged).
fn is_successful_read(method: &str, status: StatusCode) -> bool {
    matches!(method, "GET" | "HEAD") && status.is_success()
}

/// Whether the request carries any credential (checked and limited by the extractors).
pub fn has_credentials(headers: &HeaderMap) -> bool {
    ["apikey", "x-api-key", "authorization"]
        .iter()
        .any(|name| headers.contains_key(*name))
        || headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("epai_session="))
}

/// The socket's peer, or — when the peer is a trusted proxy — the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Buffers JSON responses to log them; streams (SSE) and other bodies pass untouched.
async fn capture_json_body(response: Response, cap: usize) -> (Response, Option<LoggedBody>) {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json") || ct.starts_with("application/problem+json")
        });
    if !is_json {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let logged = redact::loggable_body(&bytes, cap);
            (Response::from_parts(parts, Body::from(bytes)), logged)
        }
        Err(_) => (Response::from_parts(parts, Body::empty()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_trusted_only_from_trusted_proxies() {
        let proxy: IpAddr = "192.0.2.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 192.0.2.1".parse().unwrap());
        assert_eq!(
            client_ip(Some(proxy), &headers, &[proxy]),
            Some("203.0.113.9".parse().unwrap())
        );
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(Some(stranger), &headers, &[proxy]),
            Some(stranger)
        );
    }
}
