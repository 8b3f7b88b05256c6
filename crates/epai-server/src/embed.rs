//! Embed tokens: short-lived, read-only credentials for the insight widget, minted by a
//! partner's backend (`POST /v1/embed-tokens`) so no secret key ever reaches a browser.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use epai_domain::{AuthUserId, PartnerId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::AccountCaller;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::extract::MaybeJson;
use crate::observe::ClientInfo;
use crate::reads::{Accessor, Resource, report_foreign};

/// The audience of embed tokens; session tokens (audience `authenticated`) are not embed
/// tokens and the other way round.
pub const EMBED_AUDIENCE: &str = "epai-embed";
const MAX_TTL_SECONDS: i64 = 15 * 60;
const DEFAULT_TTL_SECONDS: i64 = 10 * 60;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmbedClaims {
    pub sub: AuthUserId,
    pub partner: PartnerId,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// The only page origin allowed to use the token, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The only insight readable with the token, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insight_id: Option<Uuid>,
    /// Only insights of this model, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl EmbedClaims {
    /// A token bound to an origin is refused from any other page (and from non-browser callers,
    /// which send no `Origin`).
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(allowed) = &self.origin else {
            return Ok(());
        };
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if origin == Some(allowed.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this embed token is not valid on this page's origin",
            ))
        }
    }

    /// Whether the token's scope covers an insight of `model`.
    pub fn allows(&self, insight: Uuid, model: Option<&str>) -> bool {
        self.insight_id.is_none_or(|only| only == insight)
            && self.model.as_deref().is_none_or(|only| model == Some(only))
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EmbedTokenRequest {
    /// Lifetime in seconds, 60 to 900 (default 600).
    #[schema(minimum = 60, maximum = 900)]
    ttl_seconds: Option<i64>,
    /// Page origin allowed to use the token, e.g. `https://shop.example.com`.
    origin: Option<String>,
    /// Restrict the token to one insight.
    insight_id: Option<Uuid>,
    /// Restrict the token to insights of one model.
    model: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EmbedToken {
    token: String,
    expires_at: DateTime<Utc>,
    expires_in: i64,
}

/// A normalised `scheme://host[:port]`, or why it is not one.
pub fn parse_origin(raw: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::invalid("origin must look like https://example.com (no path)");
    let (scheme, rest) = raw.split_once("://").ok_or_else(invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    let host = rest.trim_end_matches('/');
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !matches!(scheme.as_str(), "http" | "https") || !valid_host {
        return Err(invalid());
    }
    Ok(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// Mints a read-only token for the insight widget (at most 15 minutes). It can read insights
/// (all, one, or one model's) and nothing else: no ingest, logs, usage or keys.
#[utoipa::path(post, path = "/v1/embed-tokens", tag = "insights",
    request_body = EmbedTokenRequest, security(("apikey" = []), ("session" = [])),
    responses((status = 201, body = EmbedToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn mint(
    State(state): State<AppState>,
    caller: AccountCaller,
    client: Option<axum::Extension<ClientInfo>>,
    MaybeJson(body): MaybeJson<EmbedTokenRequest>,
) -> Result<(StatusCode, Json<EmbedToken>), ApiError> {
    let request = body.unwrap_or_default();
    let ttl = request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(60..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::invalid("ttl_seconds must be between 60 and 900"));
    }
    let origin = request.origin.as_deref().map(parse_origin).transpose()?;
    let (partner, visible) = state
        .store
        .as_user(caller.user_id, async |t| {
            let visible = match request.insight_id {
                Some(id) => t.insight(id).await?.is_some(),
                None => true,
            };
            Ok((t.partner().await?, visible))
        })
        .await?;
    if let (false, Some(id)) = (visible, request.insight_id) {
        let accessor = Accessor {
            user: caller.user_id,
            partner: Some(partner.id),
        };
        report_foreign(&state, accessor, client.map(|c| c.0), Resource::Insight, id).await;
        return Err(ApiError::not_found("no insight with this id"));
    }
    let now = Utc::now();
    let expires_at = now + chrono::Duration::seconds(ttl);
    let claims = EmbedClaims {
        sub: caller.user_id,
        partner: partner.id,
        aud: EMBED_AUDIENCE.to_owned(),
        exp: expires_at.timestamp(),
        iat: now.timestamp(),
        jti: Uuid::new_v4(),
        origin,
        insight_id: request.insight_id,
        model: request.model,
    };
    Ok((
        StatusCode::CREATED,
        Json(EmbedToken {
            token: state.jwt.sign(&claims)?,
            expires_at,
            expires_in: ttl,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_paths_refused() {
        assert_eq!(
            parse_origin("HTTPS://Shop.Example.com/").unwrap(),
            "https://shop.example.com"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            "shop.example.com",
            "ftp://x",
            "https://x/path",
            "https://",
            "javascript://x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_scope_limits_insights_and_models() {
        let id = Uuid::new_v4();
        let mut claims = EmbedClaims {
            sub: AuthUserId::new(Uuid::new_v4()),
            partner: PartnerId::new(Uuid::new_v4()),
            aud: EMBED_AUDIENCE.into(),
            exp: 0,
            iat: 0,
            jti: Uuid::new_v4(),
            origin: None,
            insight_id: Some(id),
            model: None,
        };
        assert!(claims.allows(id, None));
        assert!(!claims.allows(Uuid::new_v4(), None));
        claims.insight_id = None;
        claims.model = Some("anomaly_detection".into());
        assert!(claims.allows(id, Some("anomaly_detection")));
        assert!(!claims.allows(id, Some("forecast")));
        assert!(!claims.allows(id, None));
    }
}
