//! Where credentials and the client address are read from headers: `apikey`, `x-api-key`,
//! `Authorization`, cookies and `X-Forwarded-For`.
#![no_main]

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use epai_server::parsing::{
    bearer, client_ip, cookie, has_credentials, presented_key, presented_token,
};
use libfuzzer_sys::fuzz_target;

const HEADERS: [&str; 5] = [
    "apikey",
    "x-api-key",
    "authorization",
    "cookie",
    "x-forwarded-for",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (name, value) in HEADERS.iter().zip(data.split(|&b| b == 0)) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let sent = |found: &str| {
        headers
            .values()
            .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(found))
    };
    if let Some(key) = presented_key(&headers) {
        assert!(!key.is_empty() && sent(key));
        assert!(has_credentials(&headers));
    }
    if let Some(token) = bearer(&headers) {
        assert!(!token.is_empty() && sent(token));
    }
    match presented_token(&headers) {
        Ok(token) => assert!(!token.is_empty() && sent(token)),
        Err(error) => assert_eq!(error.status.as_u16(), 401),
    }
    if let Some(session) = cookie(&headers, "epai_session") {
        assert!(sent(session));
    }
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    let client = client_ip(Some(peer), &headers, &[peer]);
    assert!(client.is_some());
    let untrusted = client_ip(Some(peer), &headers, &[]);
    assert_eq!(
        untrusted,
        Some(peer),
        "X-Forwarded-For counts only from trusted proxies"
    );
});
