//! Who is calling a read endpoint: a partner's server (API key), a signed-in portal user
//! (session JWT) or an embedded widget (embed token). Each endpoint names which it accepts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use epai_domain::{API_KEY_PREFIX, AuthUserId, PartnerId};
use epai_store::SecurityEvent;
use serde_json::json;

use crate::AppState;
use crate::auth::{authenticate_key, bearer, limit_ip, presented_key};
use crate::embed::{EMBED_AUDIENCE, EmbedClaims};
use crate::error::{ApiError, ErrorCode};
use crate::observe::ClientInfo;
use crate::rate_limit::Subject;
use crate::session::SESSION_COOKIE;

/// The credential a request presents, before verification.
enum Presented<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
    None,
}

/// `Authorization: Bearer <jwt>` (or the session cookie) wins over an `apikey` header that is
/// not an EPAI key: the original portal sent Supabase's anon key there, to be ignored.
fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(token) = bearer(headers)
        && !token.starts_with(API_KEY_PREFIX)
    {
        return Presented::Jwt(token);
    }
    if let Some(key) = presented_key(headers) {
        return Presented::ApiKey(key);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map_or(Presented::None, |(_, token)| Presented::Jwt(token))
}

/// A caller reading through an account: an API key or a portal session. The portal and a
/// partner's backend see the same data.
#[derive(Clone, Debug)]
pub struct AccountCaller {
    pub user_id: AuthUserId,
    /// Known when the credential names it (an API key); a session names only the account.
    pub partner_id: Option<PartnerId>,
}

/// A caller reading insights: an account, or an embed token limited to its scope.
#[derive(Clone, Debug)]
pub struct InsightReader {
    pub user_id: AuthUserId,
    pub partner_id: Option<PartnerId>,
    pub embed: Option<EmbedClaims>,
}

impl FromRequestParts<AppState> for AccountCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let reader = authenticate(parts, state, false).await?;
        Ok(Self {
            user_id: reader.user_id,
            partner_id: reader.partner_id,
        })
    }
}

impl FromRequestParts<AppState> for InsightReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, true).await
    }
}

async fn authenticate(
    parts: &Parts,
    state: &AppState,
    allow_embed: bool,
) -> Result<InsightReader, ApiError> {
    let client = parts.extensions.get::<ClientInfo>().cloned();
    let refuse = async |error: ApiError, event: Option<&str>| {
        if let (Some(event), Some(client)) = (event, &client) {
            state.activity.security(SecurityEvent {
                event_type: event.to_owned(),
                partner_id: None,
                user_id: None,
                ip_address: client.ip_text(),
                user_agent: client.user_agent.clone(),
                details: json!({}),
                created_at: Utc::now(),
            });
        }
        match &client {
            Some(client) => limit_ip(state, client).await.err().unwrap_or(error),
            None => error,
        }
    };
    match presented(&parts.headers) {
        Presented::ApiKey(raw) => {
            let caller = authenticate_key(state, client.as_ref(), raw).await?;
            Ok(InsightReader {
                user_id: caller.tenant_user()?,
                partner_id: Some(caller.partner_id),
                embed: None,
            })
        }
        Presented::Jwt(token) => {
            if let Ok(session) = state.jwt.verify(token) {
                let subject = Subject::Key(format!("user:{}", session.sub));
                limit(state, client.as_ref(), subject, state.settings.rate_limits.per_key).await?;
                return Ok(InsightReader {
                    user_id: session.sub,
                    partner_id: None,
                    embed: None,
                });
            }
            if let Some(embed) = state.jwt.verify_for::<EmbedClaims>(token, EMBED_AUDIENCE) {
                if !allow_embed {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        ErrorCode::Forbidden,
                        "embed tokens may only read insights",
                    ));
                }
                embed.check_origin(&parts.headers)?;
                // Widgets run in many viewers' browsers: each viewer's IP has its own budget.
                if let Some(client) = &client {
                    limit_ip(state, client).await?;
                }
                return Ok(InsightReader {
                    user_id: embed.sub,
                    partner_id: Some(embed.partner),
                    embed: Some(embed),
                });
            }
            Err(refuse(
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::InvalidSession,
                    "the token is invalid or has expired",
                ),
                Some("invalid_token"),
            )
            .await)
        }
        // Browsers' EventSource cannot send headers: the stream takes an embed token (short-lived,
        // read-only, never an API key or session) as `access_token` in the query string.
        Presented::None
            if allow_embed
                && parts.uri.path() == STREAM_PATH
                && let Some(token) = query_access_token(parts.uri.query()) =>
        {
            match state.jwt.verify_for::<EmbedClaims>(&token, EMBED_AUDIENCE) {
                Some(embed) => {
                    embed.check_origin(&parts.headers)?;
                    if let Some(client) = &client {
                        limit_ip(state, client).await?;
                    }
                    Ok(InsightReader {
                        user_id: embed.sub,
                        partner_id: Some(embed.partner),
                        embed: Some(embed),
                    })
                }
                None => Err(refuse(
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        ErrorCode::InvalidSession,
                        "access_token must be a valid embed token",
                    ),
                    Some("invalid_token"),
                )
                .await),
            }
        }
        Presented::None => Err(refuse(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MissingApiKey,
                "send your API key in the apikey header, or a session or embed token as Authorization: Bearer",
            ),
            None,
        )
        .await),
    }
}

/// The only path that accepts a credential in its query string.
const STREAM_PATH: &str = "/v1/insights/stream";

pub fn query_access_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token" && !value.is_empty()).then(|| value.to_owned())
    })
}

async fn limit(
    state: &AppState,
    client: Option<&ClientInfo>,
    subject: Subject,
    quota: crate::rate_limit::Quota,
) -> Result<(), ApiError> {
    let decision = state.limiter.check(&subject, quota).await;
    if let Some(client) = client {
        client.note_rate_limit(decision.clone());
    }
    if decision.allowed {
        Ok(())
    } else {
        Err(crate::auth::rate_limited(&decision))
    }
}
