//! The `Idempotency-Key` header of ingest requests.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use epai_fuzz::assert_client_error;
use epai_server::parsing::idempotency_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", value);
    match idempotency_key(&headers) {
        Ok(Some(key)) => {
            assert!((1..=255).contains(&key.len()));
            assert!(key.bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(key.as_bytes(), data);
        }
        Ok(None) => panic!("a present header is never ignored"),
        Err(error) => assert_client_error(&error, data),
    }
});
