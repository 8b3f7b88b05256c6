//! Query strings of the read endpoints (events, insights, usage, logs, original paths, webhook
//! deliveries), their cursors, and the stream's `access_token`.
#![no_main]

use epai_fuzz::{assert_client_error, text, without_field_names};
use epai_server::parsing::{
    DeliveriesQuery, EventsQuery, InsightsQuery, LogsQuery, ModelsPage, OriginalPage, UsageQuery,
    decode_cursor, parse_query, query_access_token,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

/// Refused parameters are a 4xx that may name an unknown parameter (a name the client chose
/// and needs to see) but never repeats a value.
fn parse<T: DeserializeOwned>(query: &str) {
    if let Err(error) = parse_query::<T>(query) {
        assert!(error.status.is_client_error(), "{}", error.status);
        let detail = without_field_names(&error.detail);
        for (_, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            // Plain words may be the fixed message itself, learnt by the fuzzer.
            if value.len() >= 12 && value.chars().any(|c| c.is_ascii_digit()) {
                assert!(
                    !detail.contains(value),
                    "the error quotes a value: {}",
                    error.detail
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(query) = text(data) else { return };
    parse::<EventsQuery>(query);
    parse::<InsightsQuery>(query);
    parse::<UsageQuery>(query);
    parse::<LogsQuery>(query);
    parse::<OriginalPage>(query);
    parse::<ModelsPage>(query);
    parse::<DeliveriesQuery>(query);
    if let Err(error) = decode_cursor(query) {
        assert_client_error(&error, data);
    }
    if let Some(token) = query_access_token(Some(query)) {
        assert!(!token.is_empty());
        assert!(query.contains(&format!("access_token={token}")));
    }
});
