use epai_domain::{AuthUserId, PartnerId};
use serde_json::Value;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;

/// One row of `security_events`: something an operator or partner may need to audit (failed
/// logins, refresh-token reuse, rejected credentials). `details` must never hold a secret.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityEvent {
    pub event_type: String,
    pub partner_id: Option<PartnerId>,
    pub user_id: Option<AuthUserId>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub details: Value,
}

impl ServiceRole<'_> {
    pub async fn record_security_event(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.tx
            .execute(
                named_query!("security_events/insert"),
                &[
                    &event.event_type,
                    &event.partner_id.map(|p| p.as_uuid()),
                    &event.user_id.map(|u| u.as_uuid()),
                    &event.ip_address,
                    &event.user_agent,
                    &event.details,
                ],
            )
            .await?;
        Ok(())
    }
}
