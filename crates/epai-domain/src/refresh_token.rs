use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::api_key::sha256_hex;

/// Random bytes in a refresh token: 256 bits, so a fast hash is a safe stored form.
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// Characters of the unpadded base64url form of [`REFRESH_TOKEN_BYTES`] bytes.
const REFRESH_TOKEN_CHARS: usize = 43;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refresh tokens are 43 base64url characters")]
pub struct RefreshTokenError;

/// An opaque, single-use portal refresh token: 32 random bytes as unpadded base64url.
///
/// `Debug` never prints it; the database only ever sees its [`RefreshTokenHash`].
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A token from fresh random bytes (the caller owns the randomness: this crate does no I/O).
    pub fn from_random_bytes(bytes: [u8; REFRESH_TOKEN_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn parse(raw: &str) -> Result<Self, RefreshTokenError> {
        let well_formed = raw.len() == REFRESH_TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RefreshTokenError)
        }
    }

    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(sha256_hex(self.0.as_bytes()))
    }

    /// The plaintext, for the single response that hands it to its owner.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(redacted)")
    }
}

/// Lower-case hex SHA-256 of a refresh token, the only form the database stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        let token = RefreshToken::from_random_bytes([7; REFRESH_TOKEN_BYTES]);
        assert_eq!(token.reveal().len(), REFRESH_TOKEN_CHARS);
        assert_eq!(RefreshToken::parse(token.reveal()), Ok(token.clone()));
        assert_eq!(token.hash().as_str().len(), 64);
        assert_ne!(token.hash().as_str(), token.reveal());
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "short",
            &"A".repeat(44),
            &"+".repeat(43),
            &format!("{}=", "A".repeat(42)),
        ] {
            assert_eq!(RefreshToken::parse(bad), Err(RefreshTokenError), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = RefreshToken::from_random_bytes([1; REFRESH_TOKEN_BYTES]);
        assert!(!format!("{token:?}").contains(token.reveal()));
    }
}
