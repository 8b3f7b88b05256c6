use std::fmt;

use sha2::{Digest, Sha256};

/// Every EPAI key starts with this, so leaked keys are recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "epai_";

/// Random part of a key: 24 random bytes as unpadded base64url.
const SECRET_CHARS: usize = 32;

/// How many characters of a key may be shown after creation (`epai_` plus six).
const DISPLAY_PREFIX_CHARS: usize = API_KEY_PREFIX.len() + 6;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API keys start with \"epai_\"")]
    MissingPrefix,
    #[error("API keys are \"epai_\" followed by 32 base64url characters")]
    Malformed,
}

/// A partner's secret API key in its only valid shape: `epai_` + 32 base64url characters.
///
/// `Debug` and `Display` never print the secret; only [`ApiKey::display_prefix`] and the
/// SHA-256 [`ApiKeyHash`] leave this type.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn parse(raw: &str) -> Result<Self, ApiKeyError> {
        let secret = raw
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(ApiKeyError::MissingPrefix)?;
        let well_formed = secret.len() == SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ApiKeyError::Malformed)
        }
    }

    /// The non-secret beginning of the key, stored as `api_keys.key_prefix` for display.
    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_PREFIX_CHARS]
    }

    /// The lookup hash stored in `api_keys.key_hash`.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(&self.0)
    }

    /// The plaintext, for the single moment it is shown to its owner.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

/// Lower-case hex SHA-256 of a key: keys carry 192 random bits, so a fast hash is enough and
/// verification is one indexed equality lookup instead of a scan of slow password hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    fn of(key: &str) -> Self {
        Self(sha256_hex(key.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lower-case hex SHA-256, the stored form of every random bearer secret.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "epai_AbCdEfGhIjKlMnOpQrStUvWxYz012-_9";

    #[test]
    fn accepts_the_documented_shape() {
        let key = ApiKey::parse(KEY).unwrap();
        assert_eq!(key.display_prefix(), "epai_AbCdEf");
        assert_eq!(key.reveal(), KEY);
    }

    #[test]
    fn rejects_other_shapes() {
        assert_eq!(ApiKey::parse("sk_live_x"), Err(ApiKeyError::MissingPrefix));
        assert_eq!(ApiKey::parse("epai_short"), Err(ApiKeyError::Malformed));
        let with_base64_symbols = "epai_AbCdEfGhIjKlMnOpQrStUvWxYz01+/==";
        assert_eq!(
            ApiKey::parse(with_base64_symbols),
            Err(ApiKeyError::Malformed)
        );
        let too_long = format!("{KEY}A");
        assert_eq!(ApiKey::parse(&too_long), Err(ApiKeyError::Malformed));
        let multibyte = "epai_ÀbCdEfGhIjKlMnOpQrStUvWxYz012-_";
        assert!(ApiKey::parse(multibyte).is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", ApiKey::parse(KEY).unwrap());
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("epai_AbCdEf"));
    }

    #[test]
    fn hash_is_hex_sha256() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            ApiKeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
