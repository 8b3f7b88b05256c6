//! Security events that must be stored with the transaction that caused them (for example the
//! revocation of a session whose refresh token was reused).

use crate::activity::SecurityEvent;
use chrono::{DateTime, Utc};
use epai_domain::AuthUserId;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;

/// Failed logins of one account inside a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: i64,
    /// The oldest of the counted failures: the lock lifts when it leaves the window.
    pub oldest: Option<DateTime<Utc>>,
}

impl ServiceRole<'_> {
    /// The last `limit` failed logins of `user` after `since`.
    pub async fn recent_login_failures(
        &self,
        user: AuthUserId,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<LoginFailures, StoreError> {
        let row = self
            .tx
            .query_one(
                named_query!("security_events/recent_login_failures"),
                &[&user.as_uuid(), &since, &limit],
            )
            .await?;
        Ok(LoginFailures {
            count: row.get("failures"),
            oldest: row.get("oldest"),
        })
    }

    pub async fn record_security_event(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.insert_security_events(std::slice::from_ref(event))
            .await
    }
}
