//! Refresh tokens as presented to `/auth/v1/token?grant_type=refresh_token`.
#![no_main]

use epai_domain::{REFRESH_TOKEN_BYTES, RefreshToken};
use epai_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) =
        <[u8; REFRESH_TOKEN_BYTES]>::try_from(data.get(..REFRESH_TOKEN_BYTES).unwrap_or_default())
    {
        let issued = RefreshToken::from_random_bytes(bytes);
        assert_eq!(RefreshToken::parse(issued.reveal()), Ok(issued));
    }
    let Some(raw) = text(data) else { return };
    if let Ok(token) = RefreshToken::parse(raw) {
        assert_eq!(token.reveal(), raw);
        assert_ne!(token.hash().as_str(), raw);
        assert!(!format!("{token:?}").contains(raw), "Debug shows the token");
    }
});
