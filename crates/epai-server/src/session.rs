//! Portal session tokens: HS256 JWTs with Supabase's claims (`sub`, `role`, `aud`, `exp`), so
//! a browser session works like a GoTrue one, and the extractor that turns one into a user.

use std::fmt;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use epai_domain::{API_KEY_PREFIX, AuthUserId, SessionId};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState, ErrorCode};

/// The only role and audience portal tokens carry (Supabase's signed-in user).
pub const AUTHENTICATED: &str = "authenticated";

/// Cookie the portal keeps its access token in, as an alternative to the `Authorization` header.
pub const SESSION_COOKIE: &str = "epai_session";

/// The claims of a portal access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: AuthUserId,
    pub role: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub email: String,
    pub session_id: SessionId,
}

impl SessionClaims {
    /// Claims for `user` in `session`, valid for `ttl` from `issued_at`.
    pub fn new(
        user: AuthUserId,
        email: impl Into<String>,
        session: SessionId,
        issued_at: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        let iat = issued_at.timestamp();
        let lifetime = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        Self {
            sub: user,
            role: AUTHENTICATED.to_owned(),
            aud: AUTHENTICATED.to_owned(),
            exp: iat.saturating_add(lifetime),
            iat,
            email: email.into(),
            session_id: session,
        }
    }
}

/// Why a secret cannot sign session tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JWT secret must be at least {min} bytes", min = JwtKeys::MIN_SECRET_BYTES)]
pub struct WeakJwtSecret;

/// The HS256 keys that sign and verify portal access tokens and embed tokens.
///
/// Tokens carry a `kid` derived from the secret that signed them. Only the current secret signs;
/// secrets retired by a rotation ([`JwtKeys::with_previous`]) still verify the tokens they
/// signed until those expire, so a rotation logs nobody out. A `kid` naming no known secret is
/// refused.
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    /// Verification keys by `kid`: the current secret's first, then the retired ones.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    /// Signs the portal's CSRF tokens: derived from the secret, never the secret itself.
    csrf_key: [u8; 32],
}

impl JwtKeys {
    /// HS256 needs a key at least as long as its 256-bit output to keep its strength.
    pub const MIN_SECRET_BYTES: usize = 32;

    pub fn from_secret(secret: &[u8]) -> Result<Self, WeakJwtSecret> {
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(WeakJwtSecret);
        }
        let kid = Self::kid_of(secret);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUTHENTICATED]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // The server checks tokens it issued itself against its own clock: no skew to allow for.
        validation.leeway = 0;
        let mut csrf_mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| WeakJwtSecret)?;
        csrf_mac.update(b"epai portal csrf key");
        Ok(Self {
            csrf_key: csrf_mac.finalize().into_bytes().into(),
            decoding: vec![(kid.clone(), DecodingKey::from_secret(secret))],
            kid,
            encoding: EncodingKey::from_secret(secret),
            validation,
        })
    }

    /// Also accepts tokens signed with `secret`, a secret this one replaced; it never signs.
    pub fn with_previous(mut self, secret: &[u8]) -> Result<Self, WeakJwtSecret> {
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(WeakJwtSecret);
        }
        let kid = Self::kid_of(secret);
        if !self.decoding.iter().any(|(known, _)| *known == kid) {
            self.decoding.push((kid, DecodingKey::from_secret(secret)));
        }
        Ok(self)
    }

    /// The key id of `secret`: 8 hex characters of its SHA-256 (which reveal nothing of it).
    pub fn kid_of(secret: &[u8]) -> String {
        Sha256::digest(secret)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The key the portal signs CSRF tokens with.
    pub(crate) fn csrf_key(&self) -> &[u8; 32] {
        &self.csrf_key
    }

    /// The key id written into every token header: 8 hex characters of the secret's SHA-256.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The ids of every secret that verifies tokens, the signing one first.
    pub fn verifying_kids(&self) -> impl Iterator<Item = &str> {
        self.decoding.iter().map(|(kid, _)| kid.as_str())
    }

    /// The key that verifies a token with this `kid`. Tokens without one predate key ids and
    /// can only have been signed with the current secret.
    fn decoding_key(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        let kid = kid.unwrap_or(&self.kid);
        self.decoding
            .iter()
            .find(|(known, _)| known == kid)
            .map(|(_, key)| key)
    }

    pub fn issue(&self, claims: &SessionClaims) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| ApiError::internal(format_args!("cannot sign a session token: {e}")))
    }

    /// The claims of a token this server signed and that is still valid; any other token
    /// (forged, expired, another audience or role, another algorithm, `alg: none`, an unknown
    /// `kid`) is refused.
    pub fn verify(&self, token: &str) -> Result<SessionClaims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid_session(token))?;
        let key = self
            .decoding_key(header.kid.as_deref())
            .ok_or_else(|| invalid_session(token))?;
        let data = jsonwebtoken::decode::<SessionClaims>(token, key, &self.validation)
            .map_err(|_| invalid_session(token))?;
        if data.claims.role != AUTHENTICATED {
            return Err(invalid_session(token));
        }
        Ok(data.claims)
    }
}

impl JwtKeys {
    /// Signs other claims (embed tokens) with the same key and key id.
    pub(crate) fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| ApiError::internal(format_args!("cannot sign a token: {e}")))
    }

    /// The claims of a token signed by one of these keys for `audience`, if it is valid now.
    /// Such tokens always carry a `kid`.
    pub fn verify_for<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.decoding_key(Some(header.kid.as_deref()?))?;
        let mut validation = self.validation.clone();
        validation.set_audience(&[audience]);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("kid", &self.kid)
            .field("verifying_kids", &self.verifying_kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn invalid_session(token: &str) -> ApiError {
    let detail = if token.starts_with(API_KEY_PREFIX) {
        "API keys cannot be used here; sign in to the portal for a session"
    } else {
        "the session token is invalid or has expired; sign in again"
    };
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidSession, detail)
}

/// The signed-in portal user of a request, from `Authorization: Bearer <jwt>` or the
/// `epai_session` cookie. Missing: 401 `auth/missing-session`; anything that does not verify:
/// 401 `auth/invalid-session`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: AuthUserId,
    pub session_id: SessionId,
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(&parts.headers)?;
        let claims = state.jwt.verify(token)?;
        Ok(Self {
            user_id: claims.sub,
            session_id: claims.session_id,
        })
    }
}

/// The bearer token if an `Authorization` header is present (it wins over the cookie), else
/// the session cookie.
pub fn presented_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        return bearer.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidSession,
                "the Authorization header must be \"Bearer <session token>\"",
            )
        });
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MissingSession,
                "sign in first: send the session token as \"Authorization: Bearer <token>\"",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims_at(issued_at: DateTime<Utc>) -> SessionClaims {
        SessionClaims::new(
            AuthUserId::new(uuid::Uuid::new_v4()),
            "ops@acme.test",
            SessionId::new(uuid::Uuid::new_v4()),
            issued_at,
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn issued_tokens_verify_with_the_same_secret() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let claims = claims_at(Utc::now());
        let token = keys.issue(&claims).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), claims);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(keys.kid()));
        assert_eq!(keys.kid().len(), 8);
    }

    #[test]
    fn tokens_from_another_secret_are_refused() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let other = JwtKeys::from_secret(b"another secret that is long enough!!").unwrap();
        let token = other.issue(&claims_at(Utc::now())).unwrap();
        let error = keys.verify(&token).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidSession);

        // Same kid, different key: the signature check alone must refuse it.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid().to_owned());
        let forged = jsonwebtoken::encode(
            &header,
            &claims_at(Utc::now()),
            &EncodingKey::from_secret(b"another secret that is long enough!!"),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&forged).unwrap_err().code,
            ErrorCode::InvalidSession
        );
    }

    #[test]
    fn tokens_for_another_audience_or_role_are_refused() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid().to_owned());
        let sign = |claims: &SessionClaims| {
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
        };
        let mut wrong_audience = claims_at(Utc::now());
        wrong_audience.aud = "service".into();
        assert!(keys.verify(&sign(&wrong_audience)).is_err());
        let mut service_role = claims_at(Utc::now());
        service_role.role = "service_role".into();
        assert!(keys.verify(&sign(&service_role)).is_err());
    }

    #[test]
    fn tokens_of_a_retired_secret_verify_until_it_is_dropped() {
        const NEW: &[u8] = b"the secret that replaced the first one";
        let before = JwtKeys::from_secret(SECRET).unwrap();
        let claims = claims_at(Utc::now());
        let old_token = before.issue(&claims).unwrap();

        let rotated = JwtKeys::from_secret(NEW)
            .unwrap()
            .with_previous(SECRET)
            .unwrap();
        assert_eq!(rotated.verify(&old_token).unwrap(), claims);
        let new_token = rotated.issue(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(JwtKeys::kid_of(NEW).as_str()));
        assert_ne!(rotated.kid(), before.kid());
        assert_eq!(
            rotated.verifying_kids().collect::<Vec<_>>(),
            [rotated.kid(), before.kid()]
        );
        assert!(
            before.verify(&new_token).is_err(),
            "the old key never learns the new one"
        );

        let embed = jsonwebtoken::encode(
            &jsonwebtoken::decode_header(&old_token).unwrap(),
            &serde_json::json!({"sub": claims.sub, "aud": "embed", "exp": claims.exp}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(
            rotated
                .verify_for::<serde_json::Value>(&embed, "embed")
                .is_some()
        );

        let without_previous = JwtKeys::from_secret(NEW).unwrap();
        assert_eq!(
            without_previous.verify(&old_token).unwrap_err().code,
            ErrorCode::InvalidSession
        );
        assert!(
            JwtKeys::from_secret(NEW)
                .unwrap()
                .with_previous(b"short")
                .is_err()
        );
    }

    #[test]
    fn an_unknown_key_id_is_refused_even_with_a_valid_signature() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("00000000".into());
        let claims = claims_at(Utc::now());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(
            keys.verify(&token).unwrap_err().code,
            ErrorCode::InvalidSession
        );
        assert!(
            keys.verify_for::<SessionClaims>(&token, AUTHENTICATED)
                .is_none()
        );

        // Tokens from before key ids were written verify against the current secret only.
        let legacy = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(keys.verify(&legacy).unwrap(), claims);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = JwtKeys::from_secret(SECRET).unwrap();
        let two_hours_ago = Utc::now() - chrono::Duration::hours(2);
        let token = keys.issue(&claims_at(two_hours_ago)).unwrap();
        assert_eq!(
            keys.verify(&token).unwrap_err().code,
            ErrorCode::InvalidSession
        );
    }

    #[test]
    fn short_secrets_are_refused_and_debug_hides_the_secret() {
        assert_eq!(
            JwtKeys::from_secret(b"too short").unwrap_err(),
            WeakJwtSecret
        );
        let shown = format!("{:?}", JwtKeys::from_secret(SECRET).unwrap());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn bearer_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            "theme=dark; epai_session=from-cookie".parse().unwrap(),
        );
        assert_eq!(presented_token(&headers).unwrap(), "from-cookie");
        headers.insert(AUTHORIZATION, "Bearer from-header".parse().unwrap());
        assert_eq!(presented_token(&headers).unwrap(), "from-header");
        headers.insert(AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(
            presented_token(&headers).unwrap_err().code,
            ErrorCode::InvalidSession
        );
        assert_eq!(
            presented_token(&HeaderMap::new()).unwrap_err().code,
            ErrorCode::MissingSession
        );
    }
}
