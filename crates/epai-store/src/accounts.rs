//! Portal accounts and their sessions: the system paths behind sign-up, login, token refresh
//! and logout. They run as `service_role` because they act before (or instead of) a verified
//! session, and they touch `auth.*` tables no API role may read.

use chrono::{DateTime, Utc};
use epai_domain::{AuthUserId, Email, PartnerId, RefreshTokenHash, SessionId};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;

/// What a password login needs to know about an email before the password is checked.
#[derive(Clone, Debug)]
pub struct LoginCandidate {
    pub user_id: AuthUserId,
    pub partner_id: Option<PartnerId>,
    /// The stored PHC string; `None` for accounts that only use API keys.
    pub password_hash: Option<String>,
}

/// An `auth.users` row, as the GoTrue user object shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountUser {
    pub id: AuthUserId,
    pub email: Option<String>,
    pub role: String,
    pub user_metadata: Value,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A login to record: the session row and its first refresh token.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub user: AuthUserId,
    pub refresh_token: RefreshTokenHash,
    pub refresh_expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// What presenting a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live: it is now spent and the replacement is the session's current token.
    Rotated {
        user: AuthUserId,
        session: SessionId,
    },
    /// The token had already been exchanged, so a copy of it is in someone else's hands: the
    /// whole session, with every token it issued, is now revoked.
    Reused {
        user: AuthUserId,
        session: SessionId,
        partner: Option<PartnerId>,
    },
    /// Unknown, expired, or from a revoked session.
    Rejected,
}

/// Why a session ended, as stored in `auth.epai_sessions.revoked_reason`.
pub const REVOKED_BY_LOGOUT: &str = "logout";
pub const REVOKED_FOR_REUSE: &str = "refresh_token_reused";

impl ServiceRole<'_> {
    /// The account registered with `email`, if any (emails compare case-insensitively).
    pub async fn find_user_for_login(
        &self,
        email: &Email,
    ) -> Result<Option<LoginCandidate>, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("users/find_for_login"), &[&email.as_str()])
            .await?;
        Ok(row.map(|row| LoginCandidate {
            user_id: AuthUserId::new(row.get("id")),
            partner_id: row.get::<_, Option<Uuid>>("partner_id").map(PartnerId::new),
            password_hash: row.get("encrypted_password"),
        }))
    }

    pub async fn find_user(&self, user: AuthUserId) -> Result<AccountUser, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("users/find"), &[&user.as_uuid()])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no user {user}")))?;
        Ok(AccountUser {
            id: AuthUserId::new(row.get("id")),
            email: row.get("email"),
            role: row.get("role"),
            user_metadata: row.get("user_metadata"),
            email_confirmed_at: row.get("email_confirmed_at"),
            last_sign_in_at: row.get("last_sign_in_at"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        })
    }

    /// Starts a session with its first refresh token and stamps the user's last sign-in.
    pub async fn create_session(&self, new: &NewSession) -> Result<SessionId, StoreError> {
        let row = self
            .tx
            .query_one(
                named_query!("sessions/insert"),
                &[&new.user.as_uuid(), &new.ip_address, &new.user_agent],
            )
            .await?;
        let session: Uuid = row.get(0);
        self.tx
            .execute(
                named_query!("refresh_tokens/insert"),
                &[
                    &session,
                    &new.refresh_token.as_str(),
                    &None::<Uuid>,
                    &new.refresh_expires_at,
                ],
            )
            .await?;
        self.tx
            .execute(named_query!("users/record_sign_in"), &[&new.user.as_uuid()])
            .await?;
        Ok(SessionId::new(session))
    }

    /// Exchanges `presented` for `replacement`. Presenting a token that was already exchanged
    /// revokes its whole session (the outcome is `Reused`, committed like any other).
    pub async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        replacement: &RefreshTokenHash,
        replacement_expires_at: DateTime<Utc>,
    ) -> Result<RefreshOutcome, StoreError> {
        let Some(row) = self
            .tx
            .query_opt(
                named_query!("refresh_tokens/lock_presented"),
                &[&presented.as_str()],
            )
            .await?
        else {
            return Ok(RefreshOutcome::Rejected);
        };
        let token: Uuid = row.get("id");
        let session = SessionId::new(row.get("session_id"));
        let user = AuthUserId::new(row.get("user_id"));
        if row.get::<_, bool>("session_revoked") {
            return Ok(RefreshOutcome::Rejected);
        }
        if row.get::<_, bool>("rotated") {
            self.revoke_session(user, session, REVOKED_FOR_REUSE)
                .await?;
            return Ok(RefreshOutcome::Reused {
                user,
                session,
                partner: row.get::<_, Option<Uuid>>("partner_id").map(PartnerId::new),
            });
        }
        if row.get::<_, bool>("expired") {
            return Ok(RefreshOutcome::Rejected);
        }
        self.tx
            .execute(named_query!("refresh_tokens/mark_rotated"), &[&token])
            .await?;
        self.tx
            .execute(
                named_query!("refresh_tokens/insert"),
                &[
                    &session.as_uuid(),
                    &replacement.as_str(),
                    &Some(token),
                    &replacement_expires_at,
                ],
            )
            .await?;
        self.tx
            .execute(
                named_query!("sessions/mark_refreshed"),
                &[&session.as_uuid()],
            )
            .await?;
        Ok(RefreshOutcome::Rotated { user, session })
    }

    /// Ends `session` of `user`, so none of its refresh tokens works any more; `false` when it
    /// was already revoked or is not that user's.
    pub async fn revoke_session(
        &self,
        user: AuthUserId,
        session: SessionId,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let revoked = self
            .tx
            .execute(
                named_query!("sessions/revoke"),
                &[&session.as_uuid(), &user.as_uuid(), &reason],
            )
            .await?;
        Ok(revoked == 1)
    }
}
