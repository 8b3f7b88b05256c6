//! Sign-up, login, logout and the theme switch: the forms in front of `accounts`' logic.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Theme, page};
use super::{CheckedForm, SESSION_COOKIE, THEME_COOKIE, Visitor, set_cookie};
use crate::accounts::{self, ClientContext, SignedIn};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct LoginNotice {
    #[serde(default)]
    expired: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

pub(crate) async fn login_page(visitor: Visitor, Query(notice): Query<LoginNotice>) -> Response {
    if visitor.session.is_some() {
        return Redirect::to("/portal/dashboard").into_response();
    }
    let message = if notice.expired.is_some() {
        Some("Your session has ended. Log in again to continue.")
    } else if notice.signed_out.is_some() {
        Some("You have been logged out.")
    } else {
        None
    };
    let body = login_form(&visitor, "", message, false);
    visitor.respond(page(&visitor, "Log in", "/portal/login", body))
}

fn login_form(visitor: &Visitor, email: &str, message: Option<&str>, is_error: bool) -> Markup {
    html! {
        @if let Some(message) = message {
            p.notice.error[is_error] role=[is_error.then_some("alert")] { (message) }
        }
        form.card method="post" action="/portal/login" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            label for="email" { "Email" }
            input #email type="email" name="email" value=(email) autocomplete="username" required;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button.primary type="submit" { "Log in" }
        }
        p { "No account yet? " a href="/portal/signup" { "Sign up" } }
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

pub(crate) async fn log_in(
    State(state): State<AppState>,
    client: ClientContext,
    form: CheckedForm<Credentials>,
) -> Response {
    let CheckedForm { visitor, fields } = form;
    match accounts::log_in(&state, &client, &fields.email, &fields.password).await {
        Ok(signed_in) => start_session(&state, &visitor, &signed_in),
        Err(error) => {
            let status = error.status;
            let body = login_form(&visitor, &fields.email, Some(&error.detail), true);
            visitor.respond((status, page(&visitor, "Log in", "/portal/login", body)))
        }
    }
}

pub(crate) async fn signup_page(visitor: Visitor) -> Response {
    if visitor.session.is_some() {
        return Redirect::to("/portal/dashboard").into_response();
    }
    let body = signup_form(&visitor, &SignupFields::default(), None);
    visitor.respond(page(&visitor, "Sign up", "/portal/signup", body))
}

#[derive(Deserialize, Default)]
pub struct SignupFields {
    #[serde(default)]
    name: String,
    email: String,
    password: String,
}

fn signup_form(visitor: &Visitor, fields: &SignupFields, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.notice.error role="alert" { (error) }
        }
        form.card method="post" action="/portal/signup" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            label for="name" { "Company name " span.hint { "(optional)" } }
            input #name type="text" name="name" value=(fields.name) autocomplete="organization";
            label for="email" { "Email" }
            input #email type="email" name="email" value=(fields.email) autocomplete="username" required;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="new-password" minlength="8" required aria-describedby="password-hint";
            p.hint #password-hint { "At least 8 characters." }
            button.primary type="submit" { "Create account" }
        }
        p { "Already have an account? " a href="/portal/login" { "Log in" } }
    }
}

pub(crate) async fn sign_up(
    State(state): State<AppState>,
    client: ClientContext,
    form: CheckedForm<SignupFields>,
) -> Response {
    let CheckedForm { visitor, fields } = form;
    let name = Some(fields.name.trim().to_owned()).filter(|name| !name.is_empty());
    match accounts::sign_up(&state, &client, &fields.email, &fields.password, name).await {
        Ok(signed_in) => start_session(&state, &visitor, &signed_in),
        Err(error) => {
            let body = signup_form(&visitor, &fields, Some(&error.detail));
            visitor.respond((
                error.status,
                page(&visitor, "Sign up", "/portal/signup", body),
            ))
        }
    }
}

/// Sets the session cookie (the access token, for as long as it is valid) and opens the
/// dashboard.
fn start_session(state: &AppState, visitor: &Visitor, signed_in: &SignedIn) -> Response {
    match signed_in.access_token(state) {
        Ok((token, _)) => {
            let ttl = state.settings.accounts.access_token_ttl.as_secs();
            let cookie = set_cookie(SESSION_COOKIE, &token, ttl, visitor.secure);
            ([(SET_COOKIE, cookie)], Redirect::to("/portal/dashboard")).into_response()
        }
        Err(error) => super::layout::PageError::new(visitor.clone(), error).into_response(),
    }
}

pub(crate) async fn log_out(
    State(state): State<AppState>,
    form: CheckedForm<super::NoFields>,
) -> Result<Response, super::layout::PageError> {
    let visitor = form.visitor;
    if let Some(session) = visitor.session {
        accounts::end_session(&state, session)
            .await
            .map_err(|e: ApiError| super::layout::PageError::new(visitor.clone(), e))?;
    }
    let cleared = set_cookie(SESSION_COOKIE, "", 0, visitor.secure);
    Ok((
        [(SET_COOKIE, cleared)],
        Redirect::to("/portal/login?signed_out=1"),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ThemeChoice {
    theme: String,
    #[serde(default)]
    back: String,
}

/// Remembers the theme for a year and returns to the page the switch was on (a portal path
/// only, so the form cannot redirect elsewhere).
pub(crate) async fn set_theme(form: CheckedForm<ThemeChoice>) -> Response {
    let CheckedForm { visitor, fields } = form;
    let Some(theme) = Theme::parse(&fields.theme) else {
        return super::layout::error_page(&visitor, StatusCode::BAD_REQUEST, "Unknown theme.");
    };
    let back = if fields.back.starts_with("/portal/")
        && fields
            .back
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_'))
    {
        fields.back
    } else {
        "/portal/dashboard".to_owned()
    };
    let cookie = match theme.cookie_value() {
        Some(value) => set_cookie(THEME_COOKIE, value, 365 * 24 * 3600, visitor.secure),
        None => set_cookie(THEME_COOKIE, "", 0, visitor.secure),
    };
    ([(SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}
