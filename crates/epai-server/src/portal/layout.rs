//! The page frame shared by every portal page: head, navigation, theme switch.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::Visitor;

/// The colour theme a visitor picked; `System` follows `prefers-color-scheme`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Theme {
    System,
    Light,
    Dark,
}

impl Theme {
    pub(crate) fn from_cookie(value: Option<&str>) -> Self {
        match value {
            Some("light") => Self::Light,
            Some("dark") => Self::Dark,
            _ => Self::System,
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "light" => Some(Self::Light),
            "dark" => Some(Self::Dark),
            "system" => Some(Self::System),
            _ => None,
        }
    }

    pub(crate) fn cookie_value(self) -> Option<&'static str> {
        match self {
            Self::System => None,
            Self::Light => Some("light"),
            Self::Dark => Some("dark"),
        }
    }
}

/// The portal's sections, in navigation order: path and label.
const SECTIONS: [(&str, &str); 9] = [
    ("/portal/dashboard", "Dashboard"),
    ("/portal/api-key", "API key"),
    ("/portal/logs", "Request logs"),
    ("/portal/insights", "Insights"),
    ("/portal/models", "Models"),
    ("/portal/events", "Events"),
    ("/portal/webhooks", "Webhooks"),
    ("/portal/guide", "Integration guide"),
    ("/portal/settings", "Settings"),
];

/// A full page. `current` is the path of the section the page belongs to.
pub(crate) fn page(visitor: &Visitor, title: &str, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" data-theme=[visitor.theme.cookie_value()] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · EPAI" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                script src="/portal/assets/portal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/portal/dashboard" { "EPAI" }
                    (theme_switch(visitor, current))
                    @if visitor.session.is_some() {
                        form method="post" action="/portal/logout" {
                            input type="hidden" name="csrf" value=(visitor.csrf);
                            button #logout type="submit" { "Log out" }
                        }
                    }
                }
                div.frame {
                    @if visitor.session.is_some() {
                        nav aria-label="Portal" {
                            ul {
                                @for (path, label) in SECTIONS {
                                    li {
                                        a href=(path) aria-current=[(path == current).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    }
}

/// One button that switches to the other theme; a form, so it works without the script.
fn theme_switch(visitor: &Visitor, back: &str) -> Markup {
    let (next, label) = match visitor.theme {
        Theme::Dark => ("light", "Light theme"),
        Theme::Light | Theme::System => ("dark", "Dark theme"),
    };
    html! {
        form.theme method="post" action="/portal/theme" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            input type="hidden" name="theme" value=(next);
            input type="hidden" name="back" value=(back);
            button type="submit" { (label) }
        }
    }
}

/// An error as a page, with its status.
pub(crate) fn error_page(visitor: &Visitor, status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p.notice.error role="alert" { (message) }
        p { a href="/portal/dashboard" { "Back to the dashboard" } }
    };
    visitor.respond((status, page(visitor, title, "", body)))
}

/// Text for an optional timestamp.
pub(crate) fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(
        || "—".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// An error as the portal shows it: the API's message, on a page.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
    visitor: Visitor,
}

impl PageError {
    pub(crate) fn new(visitor: Visitor, error: impl Into<crate::ApiError>) -> Self {
        let error = error.into();
        let status = error.status;
        // Server faults keep their cause in the log, not on the page.
        let message = if status.is_server_error() {
            tracing::error!(error = %error.detail, "portal page failed");
            "Something went wrong on our side. Try again in a moment.".to_owned()
        } else {
            error.detail.clone()
        };
        Self {
            status,
            message,
            visitor,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(&self.visitor, self.status, &self.message)
    }
}
