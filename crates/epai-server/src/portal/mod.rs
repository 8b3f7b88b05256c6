//! The partner portal under `/portal`: server-rendered pages (maud escapes every value), one
//! stylesheet, one small script, server-drawn SVG charts. The session is the access token in
//! the `epai_session` cookie; every POST carries a CSRF token; every page is sent with a strict
//! Content-Security-Policy.

mod account;
mod charts;
mod csrf;
mod layout;
mod pages;
mod webhooks;

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::session::{SESSION_COOKIE, SessionUser};
pub use account::{Credentials, LoginNotice, SignupFields, ThemeChoice};
use csrf::Binding;
pub(crate) use layout::Theme;
pub use pages::{EventQuery, LogQuery, PlaygroundForm, SettingsFields};
pub use webhooks::WebhookForm;

/// Cookie holding the CSRF nonce of visitors who are not signed in.
const NONCE_COOKIE: &str = "epai_csrf";
/// Cookie holding the chosen theme (`light` or `dark`); absent means the system's.
const THEME_COOKIE: &str = "epai_theme";
const LOGIN_PATH: &str = "/portal/login";

/// Sent with every portal page and the widget demo: only this origin's scripts and styles.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/portal",
            get(|| async { Redirect::to("/portal/dashboard") }),
        )
        .route(LOGIN_PATH, get(account::login_page).post(account::log_in))
        .route(
            "/portal/signup",
            get(account::signup_page).post(account::sign_up),
        )
        .route("/portal/logout", post(account::log_out))
        .route("/portal/theme", post(account::set_theme))
        .route("/portal/dashboard", get(pages::dashboard))
        .route("/portal/api-key", get(pages::api_key))
        .route(
            "/portal/api-key/regenerate",
            get(pages::confirm_regenerate).post(pages::regenerate_key),
        )
        .route("/portal/logs", get(pages::logs))
        .route("/portal/logs/{id}", get(pages::log_detail))
        .route("/portal/insights", get(pages::insights))
        .route("/portal/insights/{id}", get(pages::insight_detail))
        .route("/portal/models", get(pages::models))
        .route("/portal/models/predict", post(pages::predict_playground))
        .route("/portal/events", get(pages::events))
        .route(
            "/portal/settings",
            get(pages::settings).post(pages::save_settings),
        )
        .route("/portal/guide", get(pages::guide))
        .route(
            "/portal/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/portal/webhooks/{id}",
            get(webhooks::detail).post(webhooks::save),
        )
        .route("/portal/webhooks/{id}/test", post(webhooks::send_test))
        .route(
            "/portal/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/portal/webhooks/{id}/delete", post(webhooks::delete))
        .route("/portal/assets/portal.css", get(stylesheet))
        .route("/portal/assets/portal.js", get(script))
        .layer(axum::middleware::map_response(content_security_policy))
}

pub(crate) async fn content_security_policy(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("assets/portal.css"))
}

async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/portal.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

/// Whether the browser reached us over TLS: only a trusted proxy's `X-Forwarded-Proto` can say
/// so, since the server itself speaks plain HTTP.
fn over_tls(parts: &Parts, state: &AppState) -> bool {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    peer.is_some_and(|ip| state.settings.trusted_proxies.contains(&ip))
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with the portal's attributes; `max_age` 0 deletes the cookie.
fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie names and values are base64url or JWT text")
}

/// Everything a page needs to know about the browser asking for it, signed in or not.
#[derive(Clone)]
pub(crate) struct Visitor {
    pub(crate) session: Option<SessionUser>,
    pub(crate) theme: Theme,
    pub(crate) csrf: String,
    pub(crate) secure: bool,
    binding: Binding,
    /// A nonce cookie to set when the visitor had none.
    new_nonce: Option<String>,
}

impl Visitor {
    fn from_parts(parts: &Parts, state: &AppState) -> Self {
        let session = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|token| state.jwt.verify(token).ok())
            .map(|claims| SessionUser {
                user_id: claims.sub,
                session_id: claims.session_id,
            });
        let existing_nonce = cookie(&parts.headers, NONCE_COOKIE).map(str::to_owned);
        let (binding, new_nonce) = match (&session, existing_nonce) {
            (Some(session), _) => (Binding::Session(session.session_id), None),
            (None, Some(nonce)) => (Binding::Nonce(nonce), None),
            (None, None) => {
                let nonce = csrf::new_nonce();
                (Binding::Nonce(nonce.clone()), Some(nonce))
            }
        };
        Self {
            session,
            theme: Theme::from_cookie(cookie(&parts.headers, THEME_COOKIE)),
            csrf: csrf::token(state.jwt.csrf_key(), &binding),
            secure: over_tls(parts, state),
            binding,
            new_nonce,
        }
    }

    /// Attaches the nonce cookie a page's forms depend on, when it is new.
    pub(crate) fn respond(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if let Some(nonce) = &self.new_nonce {
            response.headers_mut().append(
                SET_COOKIE,
                set_cookie(NONCE_COOKIE, nonce, 24 * 3600, self.secure),
            );
        }
        response
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts, state))
    }
}

/// A signed-in visitor; anyone else (no cookie, expired or forged token) is sent to the login
/// page.
pub(crate) struct Member {
    pub(crate) session: SessionUser,
    pub(crate) visitor: Visitor,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Redirect> {
        let visitor = Visitor::from_parts(parts, state);
        match visitor.session {
            Some(session) => Ok(Self { session, visitor }),
            None => Err(Redirect::to("/portal/login?expired=1")),
        }
    }
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize)]
pub struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form whose CSRF token was checked before its fields are read: a missing or wrong token is
/// 403, whatever else the form holds.
pub(crate) struct CheckedForm<T> {
    pub(crate) visitor: Visitor,
    pub(crate) fields: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for CheckedForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let visitor = Visitor::from_parts(&parts, state);
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = |bytes: &Bytes| Request::from_parts(parts.clone(), Body::from(bytes.clone()));
        let presented = Form::<CsrfField>::from_request(form(&bytes), state)
            .await
            .map(|Form(field)| field.csrf)
            .unwrap_or_default();
        // A visitor without a nonce cookie cannot have been given a token for it.
        if visitor.new_nonce.is_some()
            || !csrf::verify(state.jwt.csrf_key(), &visitor.binding, &presented)
        {
            return Err(layout::error_page(
                &visitor,
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from the portal. Reload the page and try again.",
            ));
        }
        let Form(fields) = Form::<T>::from_request(form(&bytes), state)
            .await
            .map_err(|_| {
                layout::error_page(
                    &visitor,
                    StatusCode::BAD_REQUEST,
                    "The form could not be read. Go back and try again.",
                )
            })?;
        Ok(Self { visitor, fields })
    }
}
