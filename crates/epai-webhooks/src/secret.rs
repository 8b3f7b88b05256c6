//! Webhook signing secrets: `whsec_` and the base64 of 32 random bytes, shown to the partner
//! once and otherwise only ever held sealed (see [`crate::SecretCipher`]).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rand::RngCore;

/// What every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
const GENERATED_BYTES: usize = 32;
/// Standard Webhooks: between 24 and 64 bytes.
const ACCEPTED_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// The HMAC key of a webhook. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

/// Text that is not a `whsec_` secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is whsec_ followed by the base64 of 24 to 64 bytes")]
pub struct SecretError;

impl SigningSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A secret as shown to the partner (`whsec_...`, base64 with or without padding).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError)?;
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| SecretError)?;
        if ACCEPTED_BYTES.contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(SecretError)
        }
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if ACCEPTED_BYTES.contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(SecretError)
        }
    }

    /// The secret in its shareable form, for the one response that shows it.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_round_trips_through_its_text() {
        let secret = SigningSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(text.len(), 6 + 44, "32 bytes of padded base64");
        assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
        assert_ne!(SigningSecret::generate(), secret);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for text in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", STANDARD.encode([0u8; 65])),
        ] {
            assert_eq!(SigningSecret::parse(text), Err(SecretError), "{text}");
        }
        assert!(
            SigningSecret::parse(&format!("whsec_{}", STANDARD_NO_PAD.encode([7u8; 32]))).is_ok()
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = SigningSecret::generate();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&secret.expose()[6..12]), "{shown}");
    }
}
