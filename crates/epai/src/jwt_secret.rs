//! The secret that signs portal session tokens: from `EPAI_JWT_SECRET`, or generated once and
//! kept in the data directory so sessions survive restarts.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// File in the data directory holding the generated secret.
pub const FILE_NAME: &str = "jwt_secret";

/// Random bytes in a generated secret.
const GENERATED_BYTES: usize = 32;

/// The HMAC key for session tokens: the bytes of the configured or stored text, so the same
/// value works when copied into `EPAI_JWT_SECRET` on another replica.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(String);

impl JwtSecret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for JwtSecret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(redacted)")
    }
}

/// The secret stored in `data_dir`, generated there (32 random bytes, base64url, mode 0600)
/// on first use.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<JwtSecret> {
    crate::secret_file::load_or_create(data_dir, FILE_NAME, "session signing secret", || {
        let mut bytes = [0u8; GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    })
    .map(JwtSecret)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_secret_is_created_private_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("state");
        let first = load_or_create(&data_dir).unwrap();
        assert_eq!(first.as_bytes().len(), 43, "32 bytes as unpadded base64url");
        let path = data_dir.join(FILE_NAME);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let second = load_or_create(&data_dir).unwrap();
        assert_eq!(second, first);
        assert_eq!(
            fs::read_dir(&data_dir).unwrap().count(),
            1,
            "no temporary files left"
        );

        let elsewhere = load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(elsewhere, first, "each data directory gets its own secret");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret: JwtSecret = "a very secret value".parse().unwrap();
        assert!(!format!("{secret:?}").contains("secret value"));
    }
}
