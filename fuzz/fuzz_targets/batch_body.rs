//! `POST /v1/events/batch` bodies: all events valid, or a 4xx listing the invalid ones.
#![no_main]

use epai_domain::EventLimits;
use epai_fuzz::{assert_client_error, now};
use epai_server::parsing::batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = EventLimits {
        max_batch_events: 8,
        max_event_bytes: 512,
        ..EventLimits::default()
    };
    match batch(data, now(), &limits) {
        Ok(events) => assert!((1..=limits.max_batch_events).contains(&events.len())),
        Err(error) => assert_client_error(&error, data),
    }
});
