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
                let size = serde_json::to_vec(&event.data).unwrap().len()
                    + event
                        .metadata
                        .as_ref()
                        .map_or(0, |m| serde_json::to_vec(m).unwrap().len());
                assert!(size <= limits.max_event_bytes);
            }
        }
    }
    if let Err(error) = parse_json::<IntegrationGuideEvent>(data) {
        assert_client_error(&error, data);
    }
});
