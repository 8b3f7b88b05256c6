use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {min} characters")]
    TooShort { min: usize },
    #[error("password must be at most {max} characters")]
    TooLong { max: usize },
    #[error("password must not contain NUL characters")]
    ContainsNul,
}

/// A portal password as typed: 8 to 256 characters, kept exactly (no trimming), never printed.
///
/// NUL is refused because C-based tooling (and PostgreSQL text) truncates or rejects it, so
/// two different inputs could end up meaning the same password.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, PasswordError> {
        if raw.contains('\0') {
            return Err(PasswordError::ContainsNul);
        }
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            Err(PasswordError::TooShort {
                min: Self::MIN_CHARS,
            })
        } else if chars > Self::MAX_CHARS {
            Err(PasswordError::TooLong {
                max: Self::MAX_CHARS,
            })
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    /// The plaintext, for the password hash function only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_and_bounded() {
        assert_eq!(
            Password::parse("seven77"),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert!(Password::parse("eight888").is_ok());
        assert!(Password::parse(&"é".repeat(256)).is_ok());
        assert_eq!(
            Password::parse(&"x".repeat(257)),
            Err(PasswordError::TooLong { max: 256 })
        );
    }

    #[test]
    fn keeps_spaces_and_refuses_nul() {
        assert_eq!(
            Password::parse("  spaced out  ").unwrap().expose(),
            "  spaced out  "
        );
        assert_eq!(
            Password::parse("long enough\0"),
            Err(PasswordError::ContainsNul)
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let shown = format!("{:?}", Password::parse("correct horse").unwrap());
        assert!(!shown.contains("correct"), "{shown}");
    }
}
