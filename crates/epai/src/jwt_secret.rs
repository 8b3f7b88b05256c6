//! The secret that signs portal session tokens: from `EPAI_JWT_SECRET`, or generated once and
//! kept in the data directory so sessions survive restarts; and the secrets it replaced, which
//! still verify the tokens they signed until those have expired.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// File in the data directory holding the generated secret.
pub const FILE_NAME: &str = "jwt_secret";

/// File beside it holding the secrets `epai jwt rotate` retired, one `<unix seconds> <secret>`
/// (when it was retired) per line.
pub const RETIRED_FILE_NAME: &str = "jwt_secret.retired";

/// How long a retired secret is kept: the longest an access token can live
/// (`EPAI_ACCESS_TOKEN_TTL_SECONDS` is at most a day).
pub const RETIRED_KEEP: Duration = Duration::from_secs(24 * 3600);

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

fn generate() -> String {
    let mut bytes = [0u8; GENERATED_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The secret stored in `data_dir`, generated there (32 random bytes, base64url, mode 0600)
/// on first use.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<JwtSecret> {
    crate::secret_file::load_or_create(data_dir, FILE_NAME, "session signing secret", generate)
        .map(JwtSecret)
}

struct RetiredSecret {
    retired_at: DateTime<Utc>,
    secret: JwtSecret,
}

/// The secrets in `data_dir`'s retired file, oldest first; none if there is no such file.
fn read_retired(data_dir: &Path) -> anyhow::Result<Vec<RetiredSecret>> {
    let path = data_dir.join(RETIRED_FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let parsed = line.trim().split_once(' ').and_then(|(at, secret)| {
                let at = DateTime::from_timestamp(at.parse().ok()?, 0)?;
                Some(RetiredSecret {
                    retired_at: at,
                    secret: JwtSecret(secret.trim().to_owned()),
                })
            });
            // The line itself is a secret: name its number only.
            parsed.with_context(|| {
                format!(
                    "{} line {}: expected \"<unix seconds> <secret>\"",
                    path.display(),
                    index + 1
                )
            })
        })
        .collect()
}

/// The secrets retired less than `within` before `now`: tokens they signed may still be valid.
pub fn retired_within(
    data_dir: &Path,
    now: DateTime<Utc>,
    within: Duration,
) -> anyhow::Result<Vec<JwtSecret>> {
    let oldest = now - chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
    Ok(read_retired(data_dir)?
        .into_iter()
        .filter(|retired| retired.retired_at > oldest)
        .map(|retired| retired.secret)
        .collect())
}

/// What `epai jwt rotate` did.
#[derive(Debug)]
pub struct Rotation {
    pub new_secret: JwtSecret,
    /// The replaced secret, when it keeps verifying its tokens.
    pub retired: Option<JwtSecret>,
    /// Retired secrets still kept, the one just retired included.
    pub kept: usize,
}

/// Replaces the secret stored in `data_dir` with a new one. With `keep_previous`, the old one
/// joins the retired file, so the tokens it signed stay valid until they expire; without, it
/// is forgotten at once along with every earlier one (everyone signs in again). Retired secrets
/// older than [`RETIRED_KEEP`] are dropped: no token they signed can still be valid.
pub fn rotate(
    data_dir: &Path,
    now: DateTime<Utc>,
    keep_previous: bool,
) -> anyhow::Result<Rotation> {
    let path = data_dir.join(FILE_NAME);
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => JwtSecret(text.trim_end().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "there is no generated session signing secret in {} yet (epai serve creates it on first start)",
            data_dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut kept = Vec::new();
    if keep_previous {
        let oldest = now - chrono::Duration::from_std(RETIRED_KEEP).unwrap_or_default();
        kept.extend(
            read_retired(data_dir)?
                .into_iter()
                .filter(|retired| retired.retired_at > oldest && retired.secret != current),
        );
        kept.push(RetiredSecret {
            retired_at: now,
            secret: current.clone(),
        });
    }
    let listing: String = kept
        .iter()
        .map(|retired| format!("{} {}\n", retired.retired_at.timestamp(), retired.secret.0))
        .collect();
    // The retired list first: should the second step fail, the old secret is still current
    // and merely listed twice.
    crate::secret_file::replace(data_dir, RETIRED_FILE_NAME, &listing)?;
    let new_secret = JwtSecret(generate());
    crate::secret_file::replace(data_dir, FILE_NAME, &new_secret.0)?;
    tracing::info!(path = %path.display(), "rotated the session signing secret");
    Ok(Rotation {
        new_secret,
        retired: keep_previous.then_some(current),
        kept: kept.len(),
    })
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
    fn rotation_retires_the_old_secret_and_forgets_it_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path();
        let day = chrono::Duration::seconds(RETIRED_KEEP.as_secs() as i64);
        let now = Utc::now();
        assert!(
            rotate(data_dir, now, true).is_err(),
            "nothing to rotate yet"
        );

        let first = load_or_create(data_dir).unwrap();
        let rotation = rotate(data_dir, now, true).unwrap();
        assert_eq!(rotation.retired.as_ref(), Some(&first));
        assert_eq!(load_or_create(data_dir).unwrap(), rotation.new_secret);
        assert_ne!(rotation.new_secret, first);
        assert_eq!(
            retired_within(data_dir, now, RETIRED_KEEP).unwrap(),
            std::slice::from_ref(&first)
        );
        let mode = std::fs::metadata(data_dir.join(RETIRED_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // A second rotation half a day later keeps both; a day after the first, only the second.
        let later = now + day / 2;
        let second = rotate(data_dir, later, true).unwrap();
        assert_eq!(second.kept, 2);
        let both = retired_within(data_dir, later, RETIRED_KEEP).unwrap();
        assert_eq!(both, [first.clone(), rotation.new_secret.clone()]);
        let next_day = now + day + chrono::Duration::seconds(1);
        assert_eq!(
            retired_within(data_dir, next_day, RETIRED_KEEP).unwrap(),
            std::slice::from_ref(&rotation.new_secret)
        );
        assert_eq!(
            retired_within(data_dir, later, Duration::from_secs(60)).unwrap(),
            std::slice::from_ref(&rotation.new_secret),
            "a server with short-lived tokens stops accepting older secrets sooner"
        );

        let forget = rotate(data_dir, later, false).unwrap();
        assert!(forget.retired.is_none());
        assert!(
            retired_within(data_dir, later, RETIRED_KEEP)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            std::fs::read_dir(data_dir).unwrap().count(),
            2,
            "the secret and the retired list, no temporary files"
        );
    }

    #[test]
    fn a_malformed_retired_file_is_an_error_that_does_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(RETIRED_FILE_NAME),
            "not-a-time s3cr3t-value\n",
        )
        .unwrap();
        let error = retired_within(dir.path(), Utc::now(), RETIRED_KEEP).unwrap_err();
        let shown = format!("{error:#}");
        assert!(shown.contains("line 1"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret: JwtSecret = "a very secret value".parse().unwrap();
        assert!(!format!("{secret:?}").contains("secret value"));
    }
}
