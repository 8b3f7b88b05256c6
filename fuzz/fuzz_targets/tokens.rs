//! Session JWTs and embed tokens, as any request may present them (`Authorization: Bearer`,
//! the session cookie, the stream's `access_token`).
//!
//! Random text almost never gets past the signature, so half the inputs are split into a header
//! and a claims part that are signed with the server's own secret (current or retired): the
//! fuzzer then explores what a valid signature over arbitrary JSON can make the server accept.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use epai_fuzz::text;
use epai_server::JwtKeys;
use epai_server::parsing::{EMBED_AUDIENCE, EmbedClaims};
use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const CURRENT: &[u8] = b"the current secret of the fuzzed server";
const RETIRED: &[u8] = b"a secret the fuzzed server rotated away from";

static KEYS: LazyLock<JwtKeys> = LazyLock::new(|| {
    JwtKeys::from_secret(CURRENT)
        .and_then(|keys| keys.with_previous(RETIRED))
        .expect("long enough secrets")
});

fn signed(secret: &[u8], header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn check(token: &str) {
    let kids: Vec<&str> = KEYS.verifying_kids().collect();
    if let Ok(claims) = KEYS.verify(token) {
        let header = jsonwebtoken::decode_header(token).expect("a verified token has a header");
        assert_eq!(header.alg, Algorithm::HS256);
        assert!(header.kid.as_deref().is_none_or(|kid| kids.contains(&kid)));
        assert_eq!(claims.role, "authenticated");
        assert_eq!(claims.aud, "authenticated");
        // Verification reads the system clock (a second may have passed since).
        assert!(
            claims.exp >= chrono::Utc::now().timestamp() - 1,
            "an expired token verified"
        );
    }
    if let Some(embed) = KEYS.verify_for::<EmbedClaims>(token, EMBED_AUDIENCE) {
        let header = jsonwebtoken::decode_header(token).expect("a verified token has a header");
        assert_eq!(header.alg, Algorithm::HS256);
        assert!(header.kid.as_deref().is_some_and(|kid| kids.contains(&kid)));
        assert_eq!(embed.aud, EMBED_AUDIENCE);
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => {
            let (header, claims) = match rest.iter().position(|&b| b == 0xff) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &b"{}"[..]),
            };
            let secret = if mode % 4 == 1 { CURRENT } else { RETIRED };
            check(&signed(secret, header, claims));
        }
        _ => {
            if let Some(token) = text(data) {
                check(token);
            }
        }
    }
});
