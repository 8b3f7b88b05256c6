//! Standard Webhooks signatures: `v1,` and the base64 of HMAC-SHA256 over
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the secret's bytes. During a secret
//! rotation a message carries one signature per valid secret, separated by spaces.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::SigningSecret;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &SigningSecret, message_id: &str, timestamp: i64, body: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.bytes()).expect("HMAC takes any key length");
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac
}

/// One signature, `v1,<base64>`.
pub fn sign(secret: &SigningSecret, message_id: &str, timestamp: i64, body: &str) -> String {
    let tag = mac(secret, message_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header: a signature per secret, space-separated.
pub fn signature_header(
    secrets: &[SigningSecret],
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` signature in `header` is `secret`'s over the message, compared in
/// constant time (what a receiver does; EPAI's tests use it).
pub fn verify(
    secret: &SigningSecret,
    message_id: &str,
    timestamp: i64,
    body: &str,
    header: &str,
) -> bool {
    header
        .split(' ')
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|tag| {
            mac(secret, message_id, timestamp, body)
                .verify_slice(&tag)
                .is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signatures_match_the_reference_example() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_of_a_rotation_verifies_and_a_changed_message_does_not() {
        let (old, new, other) = (
            SigningSecret::generate(),
            SigningSecret::generate(),
            SigningSecret::generate(),
        );
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1_700_000_000, "{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&new, "msg_1", 1_700_000_000, "{}", &header));
        assert!(verify(&old, "msg_1", 1_700_000_000, "{}", &header));
        assert!(!verify(&other, "msg_1", 1_700_000_000, "{}", &header));
        assert!(!verify(&new, "msg_2", 1_700_000_000, "{}", &header));
        assert!(!verify(&new, "msg_1", 1_700_000_001, "{}", &header));
        assert!(!verify(&new, "msg_1", 1_700_000_000, "{ }", &header));
        assert!(!verify(
            &new,
            "msg_1",
            1_700_000_000,
            "{}",
            "v2,abc garbage"
        ));
    }
}
