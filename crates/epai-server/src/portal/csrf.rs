//! CSRF tokens for the portal's forms: an HMAC of what the form is bound to — the session id
//! once signed in, before that a random nonce kept in a cookie — under a key derived from the
//! JWT secret. A cross-site page can neither read the token nor compute it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a form's token is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    Session(epai_domain::SessionId),
    Nonce(String),
}

impl Binding {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Session(id) => [b"session:".as_slice(), id.as_uuid().as_bytes()].concat(),
            Self::Nonce(nonce) => [b"nonce:".as_slice(), nonce.as_bytes()].concat(),
        }
    }
}

fn mac(key: &[u8; 32], binding: &Binding) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&binding.bytes());
    mac
}

pub(crate) fn token(key: &[u8; 32], binding: &Binding) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, binding).finalize().into_bytes())
}

/// Compares in constant time, so response timing does not reveal a correct prefix.
pub(crate) fn verify(key: &[u8; 32], binding: &Binding, presented: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(presented)
        .is_ok_and(|bytes| mac(key, binding).verify_slice(&bytes).is_ok())
}

/// A fresh nonce for visitors who are not signed in.
pub(crate) fn new_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_token_verifies_only_for_its_own_binding() {
        let session = Binding::Session(epai_domain::SessionId::new(uuid::Uuid::new_v4()));
        let other = Binding::Session(epai_domain::SessionId::new(uuid::Uuid::new_v4()));
        let issued = token(&KEY, &session);
        assert!(verify(&KEY, &session, &issued));
        assert!(!verify(&KEY, &other, &issued));
        assert!(!verify(&[8; 32], &session, &issued));
        assert!(!verify(&KEY, &session, ""));
        assert!(!verify(&KEY, &session, "not base64!"));
        let nonce = Binding::Nonce(new_nonce());
        assert!(verify(&KEY, &nonce, &token(&KEY, &nonce)));
        assert!(!verify(&KEY, &nonce, &issued));
    }
}
