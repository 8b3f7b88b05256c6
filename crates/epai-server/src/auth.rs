//! API key credentials: finding the key in a request, verifying it (an indexed SHA-256 lookup
//! behind a short-lived cache), and turning it into the partner it speaks for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use epai_domain::{API_KEY_PREFIX, ApiKey, AuthUserId, PartnerId};
use epai_store::{SecurityEvent, Store, StoreError, StoredKey};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::observe::ClientInfo;
use crate::rate_limit::{Decision, Subject};

/// A verified API key: who it is for, and until when it is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: Uuid,
    pub partner_id: PartnerId,
    pub user_id: Option<AuthUserId>,
    /// End of validity: the key's expiry, or the end of the rotation grace period.
    pub valid_until: Option<DateTime<Utc>>,
    pub is_current: bool,
    pub rate_limit_per_minute: Option<i32>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum KeyRejection {
    Unknown,
    Expired { partner_id: PartnerId },
}

/// Verifies keys against the store, remembering recent answers for `CACHE_TTL` and forgetting
/// a partner's keys the moment they change (see `epai_store::notify`).
pub struct KeyVerifier {
    cache: moka::sync::Cache<String, VerifiedKey>,
    uses: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

const CACHE_TTL: Duration = Duration::from_secs(60);

impl Default for KeyVerifier {
    fn default() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .support_invalidation_closures()
                .build(),
            uses: Mutex::new(HashMap::new()),
        }
    }
}

impl KeyVerifier {
    pub async fn verify(
        &self,
        store: &Store,
        key: &ApiKey,
        now: DateTime<Utc>,
    ) -> Result<VerifiedKey, VerifyError> {
        let hash = key.hash();
        let verified = match self.cache.get(hash.as_str()) {
            Some(hit) => hit,
            None => {
                let stored = store
                    .as_service_role(async |service| service.find_api_key(&hash).await)
                    .await
                    .map_err(VerifyError::Store)?
                    .ok_or(VerifyError::Rejected(KeyRejection::Unknown))?;
                let verified = verified_from(stored);
                self.cache
                    .insert(hash.as_str().to_owned(), verified.clone());
                verified
            }
        };
        match verified.valid_until {
            Some(until) if until <= now => {
                Err(VerifyError::Rejected(if verified.is_current {
                    KeyRejection::Expired {
                        partner_id: verified.partner_id,
                    }
                } else {
                    // A replaced key past its grace period is simply no longer a key.
                    KeyRejection::Unknown
                }))
            }
            _ => Ok(verified),
        }
    }

    /// Notes a use; the maintenance task writes it to `last_used_at` (see [`Self::take_uses`]).
    pub fn record_use(&self, key_id: Uuid, at: DateTime<Utc>) {
        if let Ok(mut uses) = self.uses.lock() {
            uses.insert(key_id, at);
        }
    }

    /// The uses recorded since the last call.
    pub fn take_uses(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        self.uses
            .lock()
            .map(|mut uses| uses.drain().collect())
            .unwrap_or_default()
    }

    pub fn forget_partner(&self, partner: PartnerId) {
        if let Err(e) = self
            .cache
            .invalidate_entries_if(move |_, key| key.partner_id == partner)
        {
            tracing::error!(error = %e, "could not invalidate cached keys; clearing the cache");
            self.cache.invalidate_all();
        }
    }

    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}

fn verified_from(stored: StoredKey) -> VerifiedKey {
    let valid_until = if stored.is_current {
        stored.expires_at
    } else {
        match (stored.previous_key_expires_at, stored.expires_at) {
            (Some(grace), _) => Some(grace),
            (None, _) => Some(DateTime::<Utc>::MIN_UTC),
        }
    };
    VerifiedKey {
        key_id: stored.key_id,
        partner_id: stored.partner_id,
        user_id: stored.user_id,
        valid_until,
        is_current: stored.is_current,
        rate_limit_per_minute: stored.rate_limit_per_minute,
    }
}

/// Why a key did not verify: refused, or the store could not be asked.
pub enum VerifyError {
    Rejected(KeyRejection),
    Store(StoreError),
}

/// The credential in a request, from `apikey`, `x-api-key` or `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    ["apikey", "x-api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or_else(|| bearer(headers).filter(|token| token.starts_with(API_KEY_PREFIX)))
        .filter(|value| !value.is_empty())
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A request authenticated by a partner's API key.
#[derive(Clone, Debug)]
pub struct PartnerCaller {
    pub partner_id: PartnerId,
    pub user_id: Option<AuthUserId>,
}

impl PartnerCaller {
    /// The account through which row-level security scopes this partner's reads.
    pub fn tenant_user(&self) -> Result<AuthUserId, ApiError> {
        self.user_id.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this partner has no account to read data through; ask the operator to attach one",
            )
        })
    }
}

impl FromRequestParts<AppState> for PartnerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = parts.extensions.get::<ClientInfo>().cloned();
        let Some(raw) = presented_key(&parts.headers) else {
            let missing = ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MissingApiKey,
                "send your API key in the apikey header",
            );
            return Err(match &client {
                Some(client) => limit_ip(state, client).await.err().unwrap_or(missing),
                None => missing,
            });
        };
        authenticate_key(state, client.as_ref(), raw).await
    }
}

/// Verifies `raw` as an API key and counts the request against the partner's quota; failures
/// are security events and count against the client's IP.
pub(crate) async fn authenticate_key(
    state: &AppState,
    client: Option<&ClientInfo>,
    raw: &str,
) -> Result<PartnerCaller, ApiError> {
    let record = |event: &str, partner: Option<PartnerId>, details: serde_json::Value| {
        state.activity.security(SecurityEvent {
            event_type: event.to_owned(),
            partner_id: partner,
            user_id: None,
            ip_address: client.and_then(ClientInfo::ip_text),
            user_agent: client.and_then(|c| c.user_agent.clone()),
            details,
            created_at: Utc::now(),
        });
    };
    let reject = async |event: &str, partner: Option<PartnerId>, error: ApiError| {
        record(event, partner, json!({ "key_prefix": shown_prefix(raw) }));
        match client {
            Some(client) => limit_ip(state, client).await.err().unwrap_or(error),
            None => error,
        }
    };
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidApiKey,
            "Invalid API key",
        )
    };
    let Ok(key) = ApiKey::parse(raw) else {
        return Err(reject("invalid_api_key", None, invalid()).await);
    };
    let now = Utc::now();
    match state.keys.verify(&state.store, &key, now).await {
        Ok(verified) => {
            state.keys.record_use(verified.key_id, now);
            let quota = state
                .settings
                .rate_limits
                .key_quota(verified.rate_limit_per_minute);
            let decision = state
                .limiter
                .check(&Subject::Key(verified.partner_id.to_string()), quota)
                .await;
            if let Some(client) = client {
                let _ = client.partner.set(verified.partner_id);
                client.note_rate_limit(decision.clone());
            }
            if !decision.allowed {
                record(
                    "rate_limited",
                    Some(verified.partner_id),
                    json!({ "policy": "key", "limit": decision.limit }),
                );
                return Err(rate_limited(&decision));
            }
            Ok(PartnerCaller {
                partner_id: verified.partner_id,
                user_id: verified.user_id,
            })
        }
        Err(VerifyError::Rejected(KeyRejection::Unknown)) => {
            Err(reject("invalid_api_key", None, invalid()).await)
        }
        Err(VerifyError::Rejected(KeyRejection::Expired { partner_id })) => Err(reject(
            "expired_api_key",
            Some(partner_id),
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::ExpiredApiKey,
                "this API key has expired; create a new one in the portal",
            ),
        )
        .await),
        Err(VerifyError::Store(e)) => Err(e.into()),
    }
}

/// Counts one request against the client's IP quota; `Err` with the 429 when it is spent.
pub async fn limit_ip(state: &AppState, client: &ClientInfo) -> Result<(), ApiError> {
    let Some(ip) = client.ip else {
        return Ok(());
    };
    let decision = state
        .limiter
        .check(&Subject::Ip(ip), state.settings.rate_limits.per_ip)
        .await;
    client.note_rate_limit(decision.clone());
    if decision.allowed {
        return Ok(());
    }
    state.activity.security(SecurityEvent {
        event_type: "rate_limited".into(),
        partner_id: None,
        user_id: None,
        ip_address: Some(ip.to_string()),
        user_agent: client.user_agent.clone(),
        details: json!({ "policy": "ip", "limit": decision.limit }),
        created_at: Utc::now(),
    });
    Err(rate_limited(&decision))
}

pub(crate) fn rate_limited(decision: &Decision) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimitExceeded,
        format!(
            "rate limit of {} requests per minute exceeded; retry later",
            decision.limit
        ),
    );
    error.retry_after_seconds = decision
        .retry_after
        .map(|wait| wait.as_secs_f64().ceil().max(1.0) as u64);
    error
}

/// At most the non-secret display prefix of whatever was presented, for security events.
fn shown_prefix(raw: &str) -> String {
    raw.chars().take(API_KEY_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_every_documented_header() {
        let key = "epai_AbCdEfGhIjKlMnOpQrStUvWxYz012-_9";
        for (name, value) in [
            ("apikey", key.to_owned()),
            ("x-api-key", key.to_owned()),
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("bearer  {key} ")),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.parse().unwrap());
            assert_eq!(presented_key(&headers), Some(key), "{name}: {value}");
        }
        let mut jwt = HeaderMap::new();
        jwt.insert("authorization", "Bearer eyJhbGciOi.x.y".parse().unwrap());
        assert_eq!(
            presented_key(&jwt),
            None,
            "a session token is not an API key"
        );
    }

    #[test]
    fn a_replaced_key_is_valid_until_its_grace_period_ends() {
        let now = Utc::now();
        let stored = StoredKey {
            key_id: Uuid::new_v4(),
            partner_id: PartnerId::new(Uuid::new_v4()),
            user_id: None,
            expires_at: Some(now + chrono::Duration::days(90)),
            is_current: false,
            previous_key_expires_at: Some(now + chrono::Duration::hours(1)),
            rate_limit_per_minute: None,
        };
        assert_eq!(
            verified_from(stored.clone()).valid_until,
            stored.previous_key_expires_at
        );
        let no_grace = StoredKey {
            previous_key_expires_at: None,
            ..stored
        };
        assert!(verified_from(no_grace).valid_until.unwrap() < now);
    }
}
