//! Password hashing: argon2id with OWASP's parameters, run on the blocking pool because one
//! hash takes tens of milliseconds of CPU and 19 MiB of memory.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use epai_domain::Password;

use crate::ApiError;

/// OWASP Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

static HASHER: LazyLock<Argon2<'static>> = LazyLock::new(|| {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the OWASP argon2 parameters are within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
});

/// Verified in place of a missing or unreadable hash, so that a login for an unknown email
/// costs the same as one with a wrong password and response times reveal nothing.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    HASHER
        .hash_password(b"not the password of any account")
        .expect("hashing a fixed password succeeds")
        .to_string()
});

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) to store for `password`.
pub async fn hash_password(password: Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        HASHER
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| ApiError::internal(format_args!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(format_args!("password hashing task failed: {e}")))?
}

/// Whether `password` matches `stored`. Without a usable stored hash the password is checked
/// against a dummy hash anyway and the answer is `false`.
pub(crate) async fn verify_password(
    stored: Option<String>,
    password: Password,
) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let candidate = password.expose().as_bytes();
        let outcome = stored
            .as_deref()
            .map(|hash| HASHER.verify_password(candidate, hash));
        match outcome {
            Some(Ok(())) => true,
            Some(Err(argon2::password_hash::Error::PasswordInvalid)) => false,
            // No hash, or one argon2 cannot read (e.g. a bcrypt hash from another system).
            _ => {
                let _ = HASHER.verify_password(candidate, DUMMY_HASH.as_str());
                false
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal(format_args!("password check task failed: {e}")))
}

/// Computes the dummy hash now, so the first login for an unknown email is not the one slow
/// response that tells it apart.
pub(crate) fn prepare() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_that_verify_only_the_right_password() {
        let password = Password::parse("correct horse battery").unwrap();
        let first = hash_password(password.clone()).await.unwrap();
        let second = hash_password(password.clone()).await.unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.contains("correct horse"));
        assert!(
            verify_password(Some(first.clone()), password)
                .await
                .unwrap()
        );
        let wrong = Password::parse("wrong horse battery").unwrap();
        assert!(!verify_password(Some(first), wrong.clone()).await.unwrap());
        assert!(!verify_password(None, wrong.clone()).await.unwrap());
        assert!(
            !verify_password(Some("$2a$10$bcrypt-hash".into()), wrong)
                .await
                .unwrap()
        );
    }
}
