//! API keys as presented: `epai_` and 32 base64url characters, or refused.
#![no_main]

use epai_domain::ApiKey;
use epai_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(raw) = text(data) else { return };
    if let Ok(key) = ApiKey::parse(raw) {
        assert_eq!(key.reveal(), raw);
        assert_eq!(raw.len(), 37);
        assert!(raw.starts_with("epai_"));
        assert!(raw.starts_with(key.display_prefix()));
        assert_eq!(key.hash().as_str().len(), 64);
        assert!(!format!("{key:?}").contains(raw), "Debug shows the key");
    }
});
