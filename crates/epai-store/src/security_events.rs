//! Security events that must be stored with the transaction that caused them (for example the
//! revocation of a session whose refresh token was reused).

use crate::activity::SecurityEvent;
use crate::error::StoreError;
use crate::service::ServiceRole;

impl ServiceRole<'_> {
    pub async fn record_security_event(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.insert_security_events(std::slice::from_ref(event))
            .await
    }
}
