//! GoTrue-compatible portal accounts: sign-up, password login, refresh-token rotation, logout
//! and the current user, under `/auth/v1`, with the request and response shapes supabase-js
//! and other GoTrue clients expect.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use epai_domain::{
    AuthUserId, Email, PartnerId, PartnerName, Password, REFRESH_TOKEN_BYTES, RefreshToken,
    SessionId,
};
use epai_store::{
    AccountUser, NewPartner, NewSession, REVOKED_BY_LOGOUT, RefreshOutcome, SecurityEvent,
    StoreError,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::extract::ApiJson;
use crate::observe::ClientInfo;
use crate::password::{hash_password, verify_password};
use crate::session::{AUTHENTICATED, SessionClaims, SessionUser};
use crate::{ApiError, AppState, ErrorCode};

/// How long portal credentials last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// Lifetime of an access token (a JWT, valid until it expires even after logout).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token that is never exchanged.
    pub refresh_token_ttl: Duration,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Security event types written by this module.
const LOGIN_FAILED: &str = "login_failed";
const REFRESH_TOKEN_REUSED: &str = "refresh_token_reused";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/v1/signup", post(signup))
        .route("/auth/v1/token", post(token))
        .route("/auth/v1/logout", post(logout))
        .route("/auth/v1/user", get(current_user))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SignupRequest {
    email: String,
    password: String,
    #[serde(default)]
    data: Option<SignupData>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SignupData {
    #[serde(default)]
    name: Option<String>,
}

/// Creates the account, its partner and a first session in one transaction; answers 200 with
/// the session, like GoTrue with auto-confirmation.
/// Creates an account, its partner and a session (GoTrue-compatible).
#[utoipa::path(post, path = "/auth/v1/signup", tag = "accounts", request_body = SignupRequest,
    responses((status = 200, body = Object, description = "a session, as from the token endpoint"),
              (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn signup(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(request): ApiJson<SignupRequest>,
) -> Result<Response, ApiError> {
    let name = request.data.and_then(|data| data.name);
    let signed_in = sign_up(&state, &client, &request.email, &request.password, name).await?;
    session_response(&state, signed_in)
}

/// A new session: the account, its id and the refresh token, shown to the client once.
pub(crate) struct SignedIn {
    pub(crate) account: AccountUser,
    pub(crate) session: SessionId,
    pub(crate) refresh_token: RefreshToken,
}

impl SignedIn {
    /// The access token of this session and its claims.
    pub(crate) fn access_token(
        &self,
        state: &AppState,
    ) -> Result<(String, SessionClaims), ApiError> {
        let claims = SessionClaims::new(
            self.account.id,
            self.account.email.clone().unwrap_or_default(),
            self.session,
            Utc::now(),
            state.settings.accounts.access_token_ttl,
        );
        Ok((state.jwt.issue(&claims)?, claims))
    }
}

/// Creates the account, its partner and a first session in one transaction. The JSON API and
/// the portal's sign-up form both come here.
pub(crate) async fn sign_up(
    state: &AppState,
    client: &ClientContext,
    raw_email: &str,
    raw_password: &str,
    raw_name: Option<String>,
) -> Result<SignedIn, ApiError> {
    let email = Email::parse(raw_email).map_err(|e| ApiError::invalid(e.to_string()))?;
    let password = Password::parse(raw_password).map_err(|e| ApiError::invalid(e.to_string()))?;
    let name = match raw_name {
        Some(name) => PartnerName::parse(&name).map_err(|e| ApiError::invalid(e.to_string()))?,
        None => PartnerName::from_email(&email),
    };
    let new_partner = NewPartner {
        name,
        email,
        password_hash: Some(hash_password(password).await?),
    };
    let refresh_token = new_refresh_token();
    let created = state
        .store
        .as_service_role(async |service| {
            let partner = service.create_partner(&new_partner).await?;
            let user = partner.require_user()?;
            let session = service
                .create_session(&client.new_session(user, &refresh_token, state))
                .await?;
            Ok((service.find_user(user).await?, session))
        })
        .await;
    match created {
        Ok((account, session)) => Ok(SignedIn {
            account,
            session,
            refresh_token,
        }),
        Err(StoreError::Conflict(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AccountExists,
            "an account with this email already exists; log in instead",
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct GrantType {
    grant_type: Option<String>,
}

/// Every grant's fields; which ones are required depends on `grant_type`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct TokenRequest {
    email: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

/// Password login or refresh-token rotation (`grant_type=password` or `refresh_token`).
#[utoipa::path(post, path = "/auth/v1/token", tag = "accounts", request_body = TokenRequest,
    params(("grant_type" = String, Query, description = "password or refresh_token")),
    responses((status = 200, body = Object, description = "access_token, token_type, expires_in, expires_at, refresh_token, user"),
              (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn token(
    State(state): State<AppState>,
    client: ClientContext,
    grant: Result<Query<GrantType>, QueryRejection>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    let grant = grant
        .map_err(|_| ApiError::invalid("the query string could not be parsed"))?
        .0
        .grant_type;
    match grant.as_deref() {
        Some("password") => {
            let email = required(request.email, "email")?;
            let password = required(request.password, "password")?;
            let signed_in = log_in(&state, &client, &email, &password).await?;
            session_response(&state, signed_in)
        }
        Some("refresh_token") => refresh_grant(&state, &client, request).await,
        Some(_) => Err(ApiError::invalid(
            "unsupported grant_type; use password or refresh_token",
        )),
        None => Err(ApiError::invalid(
            "the grant_type query parameter is required (password or refresh_token)",
        )),
    }
}

fn required(field: Option<String>, name: &str) -> Result<String, ApiError> {
    field.ok_or_else(|| ApiError::invalid(format!("the field `{name}` is required")))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidCredentials,
        "invalid login credentials",
    )
}

fn invalid_refresh_token() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRefreshToken,
        "the refresh token is invalid, expired or already used; sign in again",
    )
}

/// Password login, for the token endpoint and the portal's login form. Unknown email and wrong
/// password answer alike, after the same argon2 work, so neither the response nor its timing
/// tells whether an account exists; every failure is recorded as a security event.
pub(crate) async fn log_in(
    state: &AppState,
    client: &ClientContext,
    raw_email: &str,
    raw_password: &str,
) -> Result<SignedIn, ApiError> {
    let (Ok(email), Ok(password)) = (Email::parse(raw_email), Password::parse(raw_password)) else {
        // No account can match input that sign-up would have refused.
        record_login_failure(state, client, None, "malformed_credentials", None).await?;
        return Err(invalid_credentials());
    };
    let candidate = state
        .store
        .as_service_role(async |service| service.find_user_for_login(&email).await)
        .await?;
    if let Some(candidate) = &candidate {
        refuse_locked_account(state, client, candidate).await?;
    }
    let stored_hash = candidate.as_ref().and_then(|c| c.password_hash.clone());
    let verified = verify_password(stored_hash, password).await?;
    match candidate {
        Some(candidate) if verified => {
            let refresh_token = new_refresh_token();
            let (account, session) = state
                .store
                .as_service_role(async |service| {
                    let new = client.new_session(candidate.user_id, &refresh_token, state);
                    let session = service.create_session(&new).await?;
                    Ok((service.find_user(candidate.user_id).await?, session))
                })
                .await?;
            Ok(SignedIn {
                account,
                session,
                refresh_token,
            })
        }
        Some(candidate) => {
            let reason = if candidate.password_hash.is_some() {
                "wrong_password"
            } else {
                "no_password_set"
            };
            let user = (candidate.user_id, candidate.partner_id);
            record_login_failure(state, client, Some(user), reason, Some(&email)).await?;
            Err(invalid_credentials())
        }
        None => {
            record_login_failure(state, client, None, "unknown_email", Some(&email)).await?;
            Err(invalid_credentials())
        }
    }
}

/// Failed logins an account may have within `LOGIN_FAILURE_WINDOW` before further attempts
/// are refused (the original deployment's 10 per hour per account).
const MAX_LOGIN_FAILURES: i64 = 10;
const LOGIN_FAILURE_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// Refuses a password guess for an account that has failed too often lately, without spending
/// the password hash on it; the lock lifts as the failures age out of the window.
async fn refuse_locked_account(
    state: &AppState,
    client: &ClientContext,
    candidate: &epai_store::LoginCandidate,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let failures = state
        .store
        .as_service_role(async |service| {
            service
                .recent_login_failures(
                    candidate.user_id,
                    now - LOGIN_FAILURE_WINDOW,
                    MAX_LOGIN_FAILURES,
                )
                .await
        })
        .await?;
    if failures.count < MAX_LOGIN_FAILURES {
        return Ok(());
    }
    let unlocks_at = failures.oldest.unwrap_or(now) + LOGIN_FAILURE_WINDOW;
    state.activity.security(SecurityEvent {
        event_type: "login_locked".to_owned(),
        partner_id: candidate.partner_id,
        user_id: Some(candidate.user_id),
        ip_address: client.ip_address.clone(),
        user_agent: client.user_agent.clone(),
        details: json!({ "failures_in_window": failures.count, "unlocks_at": unlocks_at }),
        created_at: now,
    });
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimitExceeded,
        "too many failed sign-ins for this account; try again later",
    );
    error.retry_after_seconds = Some((unlocks_at - now).num_seconds().max(1).unsigned_abs());
    Err(error)
}

async fn record_login_failure(
    state: &AppState,
    client: &ClientContext,
    account: Option<(AuthUserId, Option<PartnerId>)>,
    reason: &str,
    email: Option<&Email>,
) -> Result<(), ApiError> {
    let event = SecurityEvent {
        event_type: LOGIN_FAILED.to_owned(),
        partner_id: account.and_then(|(_, partner)| partner),
        user_id: account.map(|(user, _)| user),
        ip_address: client.ip_address.clone(),
        user_agent: client.user_agent.clone(),
        details: json!({ "reason": reason, "email": email.map(Email::as_str) }),
        created_at: Utc::now(),
    };
    state
        .store
        .as_service_role(async |service| service.record_security_event(&event).await)
        .await?;
    Ok(())
}

/// Exchanges a refresh token for a new pair. Each refresh token works once: presenting one that
/// was already exchanged means it was copied, so the whole session is revoked and recorded.
async fn refresh_grant(
    state: &AppState,
    client: &ClientContext,
    request: TokenRequest,
) -> Result<Response, ApiError> {
    let raw = required(request.refresh_token, "refresh_token")?;
    let presented = RefreshToken::parse(&raw).map_err(|_| invalid_refresh_token())?;
    let replacement = new_refresh_token();
    let replacement_expires_at = expiry(Utc::now(), state.settings.accounts.refresh_token_ttl);
    let rotated = state
        .store
        .as_service_role(async |service| {
            let outcome = service
                .rotate_refresh_token(&presented.hash(), &replacement.hash(), replacement_expires_at)
                .await?;
            match outcome {
                RefreshOutcome::Rotated { user, session } => {
                    Ok(Some((service.find_user(user).await?, session)))
                }
                RefreshOutcome::Reused {
                    user,
                    session,
                    partner,
                } => {
                    tracing::warn!(user.id = %user, session.id = %session, "refresh token reused; session revoked");
                    let event = SecurityEvent {
                        event_type: REFRESH_TOKEN_REUSED.to_owned(),
                        partner_id: partner,
                        user_id: Some(user),
                        ip_address: client.ip_address.clone(),
                        user_agent: client.user_agent.clone(),
                        details: json!({ "session_id": session, "action": "session_revoked" }),
                        created_at: Utc::now(),
                    };
                    service.record_security_event(&event).await?;
                    Ok(None)
                }
                RefreshOutcome::Rejected => Ok(None),
            }
        })
        .await?;
    let (account, session) = rotated.ok_or_else(invalid_refresh_token)?;
    session_response(
        state,
        SignedIn {
            account,
            session,
            refresh_token: replacement,
        },
    )
}

/// Ends the caller's session: its refresh tokens stop working at once. The access token
/// itself stays valid until it expires, as with GoTrue.
/// Ends the session: its refresh tokens stop working.
#[utoipa::path(post, path = "/auth/v1/logout", tag = "accounts", security(("session" = [])),
    responses((status = 204), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    session: SessionUser,
) -> Result<StatusCode, ApiError> {
    end_session(&state, session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the session's refresh tokens (the API's logout and the portal's).
pub(crate) async fn end_session(state: &AppState, session: SessionUser) -> Result<(), ApiError> {
    state
        .store
        .as_service_role(async |service| {
            service
                .revoke_session(session.user_id, session.session_id, REVOKED_BY_LOGOUT)
                .await
        })
        .await?;
    Ok(())
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/v1/user", tag = "accounts", security(("session" = [])),
    responses((status = 200, body = Object), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn current_user(
    State(state): State<AppState>,
    session: SessionUser,
) -> Result<Json<UserObject>, ApiError> {
    let account = state
        .store
        .as_service_role(async |service| service.find_user(session.user_id).await)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidSession,
                "the account of this session no longer exists",
            ),
            other => other.into(),
        })?;
    Ok(Json(UserObject::from(account)))
}

/// GoTrue's session response.
#[derive(Serialize)]
struct SessionResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    expires_at: i64,
    refresh_token: String,
    user: UserObject,
}

/// GoTrue's user object.
#[derive(Serialize)]
pub(crate) struct UserObject {
    id: AuthUserId,
    aud: &'static str,
    role: String,
    email: Option<String>,
    email_confirmed_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    last_sign_in_at: Option<DateTime<Utc>>,
    app_metadata: Value,
    user_metadata: Value,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

impl From<AccountUser> for UserObject {
    fn from(account: AccountUser) -> Self {
        Self {
            id: account.id,
            aud: AUTHENTICATED,
            role: account.role,
            email: account.email,
            email_confirmed_at: account.email_confirmed_at,
            confirmed_at: account.email_confirmed_at,
            last_sign_in_at: account.last_sign_in_at,
            app_metadata: json!({ "provider": "email", "providers": ["email"] }),
            user_metadata: account.user_metadata,
            created_at: account.created_at,
            updated_at: account.updated_at,
        }
    }
}

fn session_response(state: &AppState, signed_in: SignedIn) -> Result<Response, ApiError> {
    let (access_token, claims) = signed_in.access_token(state)?;
    let body = SessionResponse {
        access_token,
        token_type: "bearer",
        expires_in: state.settings.accounts.access_token_ttl.as_secs(),
        expires_at: claims.exp,
        refresh_token: signed_in.refresh_token.reveal().to_owned(),
        user: UserObject::from(signed_in.account),
    };
    // Credentials must not be kept by caches along the way (RFC 6749 §5.1).
    let no_store = [(CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((no_store, Json(body)).into_response())
}

fn new_refresh_token() -> RefreshToken {
    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    RefreshToken::from_random_bytes(bytes)
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Who is calling, for sessions and security events: the client address (the socket's peer,
/// or what a trusted proxy reports) and the user agent.
pub(crate) struct ClientContext {
    ip_address: Option<String>,
    user_agent: Option<String>,
}

impl ClientContext {
    fn new_session(
        &self,
        user: AuthUserId,
        refresh_token: &RefreshToken,
        state: &AppState,
    ) -> NewSession {
        NewSession {
            user,
            refresh_token: refresh_token.hash(),
            refresh_expires_at: expiry(Utc::now(), state.settings.accounts.refresh_token_ttl),
            ip_address: self.ip_address.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let client = parts.extensions.get::<ClientInfo>();
        Ok(Self {
            ip_address: client.and_then(ClientInfo::ip_text),
            user_agent: client.and_then(|c| c.user_agent.clone()),
        })
    }
}
