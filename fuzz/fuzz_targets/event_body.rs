//! `POST /v1/events`, `/ingest` and `/ingest-v2` bodies: JSON parsing, then event validation.
#![no_main]

use epai_domain::EventLimits;
use epai_fuzz::{assert_client_error, now};
use epai_server::parsing::{EventBody, IntegrationGuideEvent, one_event, parse_json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let limits = EventLimits::default();
    match parse_json::<Value>(data) {
        Err(error) => assert_client_error(&error, data),
        Ok(body) => {
            if let Ok(event) = one_event(EventBody::Json(body), now(), &limits, None) {
                assert!(event.event_type.as_str().len() <= 100);
                assert!(event.occurred_at <= now() + limits.max_future_skew);
                let size =
                    event.data.get().len() + event.metadata.as_ref().map_or(0, |m| m.get().len());
                assert!(size <= limits.max_event_bytes);
                // What passed must be an object jsonb stores: no NUL, no lone surrogate.
                let data: Value = serde_json::from_str(event.data.get()).unwrap();
                assert!(data.is_object());
                assert!(!data.to_string().contains("\\u0000"));
            }
        }
    }
    if let Err(error) = parse_json::<IntegrationGuideEvent>(data) {
        assert_client_error(&error, data);
    }
});
