//! The `Idempotency-Key` header of ingest requests.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use epai_server::parsing::idempotency_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", value);
    match idempotency_key(&headers) {
        Ok(Some(key)) => {
            assert!((1..=255).contains(&key.len()));
            assert!(key.bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(key.as_bytes(), data);
        }
        Ok(None) => panic!("a present header is never ignored"),
        // The message is fixed: it cannot echo the key (the fuzzer once sent the message itself).
        Err(error) => {
            assert_eq!(error.status.as_u16(), 400);
            assert_eq!(
                error.detail,
                "Idempotency-Key must be 1 to 255 visible ASCII characters"
            );
        }
    }
});
