//! Sealing webhook secrets at rest. A secret must stay usable for HMAC, so it cannot be
//! hashed like an API key: it is encrypted with ChaCha20-Poly1305 under a 256-bit server key
//! (`EPAI_WEBHOOK_KEY`, or generated once into the data directory), with a random nonce per
//! seal and the webhook's id as associated data, so a sealed secret copied to another webhook's
//! row does not open. Only the sealed bytes reach the database.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use epai_store::SealedSecret;
use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::secret::SigningSecret;

const KEY_BYTES: usize = 32;
/// The first byte of every sealed secret: the format, so another can follow.
const FORMAT_V1: u8 = 1;
const CONTEXT: &[u8] = b"epai webhook signing secret v1";

/// Why a sealed secret cannot be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error(
        "the secret was sealed with server key {sealed_with}, this process has key {ours} (EPAI_WEBHOOK_KEY)"
    )]
    OtherKey { sealed_with: String, ours: String },
    #[error("the sealed secret is damaged or belongs to another webhook")]
    Damaged,
}

/// Text that is not a webhook key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("EPAI_WEBHOOK_KEY must be the base64 (or base64url) of exactly 32 bytes")]
pub struct KeyError;

/// The server key that seals and opens webhook secrets. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretCipher {
    key: [u8; KEY_BYTES],
    key_id: String,
}

impl SecretCipher {
    /// A cipher with a new random key.
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self::from_key(key)
    }

    fn from_key(key: [u8; KEY_BYTES]) -> Self {
        let digest = Sha256::digest(key);
        let key_id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self { key, key_id }
    }

    /// A key as configured: the base64 or base64url (padded or not) of 32 bytes.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text)
                    .ok()
            })
            .ok_or(KeyError)?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| KeyError)?;
        Ok(Self::from_key(key))
    }

    /// The key as text (base64url), for storing it.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key)
    }

    /// The first 8 hex digits of the key's SHA-256: names the key without revealing it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.key).expect("a 32-byte key"))
    }

    fn associated_data(webhook: Uuid) -> Vec<u8> {
        [CONTEXT, webhook.as_bytes()].concat()
    }

    /// `secret` sealed for `webhook`: format byte, nonce, ciphertext and tag.
    pub fn seal(&self, webhook: Uuid, secret: &SigningSecret) -> SealedSecret {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut in_out = secret.bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::associated_data(webhook)),
                &mut in_out,
            )
            .expect("sealing a short secret cannot fail");
        let mut ciphertext = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        ciphertext.push(FORMAT_V1);
        ciphertext.extend_from_slice(&nonce);
        ciphertext.extend_from_slice(&in_out);
        SealedSecret {
            ciphertext,
            key_id: self.key_id.clone(),
        }
    }

    /// The secret `sealed` holds, if it was sealed for `webhook` with this key.
    pub fn open(&self, webhook: Uuid, sealed: &SealedSecret) -> Result<SigningSecret, CipherError> {
        if sealed.key_id != self.key_id {
            return Err(CipherError::OtherKey {
                sealed_with: sealed.key_id.clone(),
                ours: self.key_id.clone(),
            });
        }
        let (format, rest) = sealed
            .ciphertext
            .split_first()
            .ok_or(CipherError::Damaged)?;
        if *format != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(CipherError::Damaged);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Damaged)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .aead()
            .open_in_place(
                nonce,
                Aad::from(Self::associated_data(webhook)),
                &mut in_out,
            )
            .map_err(|_| CipherError::Damaged)?;
        SigningSecret::from_bytes(plain.to_vec()).map_err(|_| CipherError::Damaged)
    }
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretCipher(key {})", self.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_webhook_and_key() {
        let cipher = SecretCipher::generate();
        let secret = SigningSecret::generate();
        let webhook = Uuid::new_v4();
        let sealed = cipher.seal(webhook, &secret);
        assert_eq!(cipher.open(webhook, &sealed).unwrap(), secret);
        assert!(
            !sealed
                .ciphertext
                .windows(secret.bytes().len())
                .any(|w| w == secret.bytes()),
            "the plaintext is not in the sealed bytes"
        );
        assert_ne!(
            cipher.seal(webhook, &secret),
            sealed,
            "a fresh nonce each time"
        );

        assert_eq!(
            cipher.open(Uuid::new_v4(), &sealed),
            Err(CipherError::Damaged)
        );
        let mut tampered = sealed.clone();
        *tampered.ciphertext.last_mut().unwrap() ^= 1;
        assert_eq!(cipher.open(webhook, &tampered), Err(CipherError::Damaged));

        let other = SecretCipher::generate();
        assert!(matches!(
            other.open(webhook, &sealed),
            Err(CipherError::OtherKey { .. })
        ));
        let same_id_other_key = SealedSecret {
            key_id: other.key_id().to_owned(),
            ..sealed
        };
        assert_eq!(
            other.open(webhook, &same_id_other_key),
            Err(CipherError::Damaged)
        );
    }

    #[test]
    fn a_key_survives_its_text_form_and_bad_keys_are_refused() {
        let cipher = SecretCipher::generate();
        let again = SecretCipher::from_text(&cipher.to_text()).unwrap();
        assert_eq!(again.key_id(), cipher.key_id());
        let secret = SigningSecret::generate();
        let webhook = Uuid::new_v4();
        assert_eq!(
            again.open(webhook, &cipher.seal(webhook, &secret)).unwrap(),
            secret
        );
        assert!(SecretCipher::from_text(&STANDARD.encode([9u8; 32])).is_ok());
        assert_eq!(SecretCipher::from_text("short").err(), Some(KeyError));
        assert_eq!(
            SecretCipher::from_text(&STANDARD.encode([9u8; 31])).err(),
            Some(KeyError)
        );
        assert!(!format!("{cipher:?}").contains(&cipher.to_text()));
    }
}
