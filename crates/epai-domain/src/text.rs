use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must not contain control characters")]
    ControlCharacter { field: &'static str },
    #[error("email must look like name@example.com")]
    InvalidEmail,
}

fn clean(field: &'static str, raw: &str, max: usize) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty { field });
    }
    if trimmed.chars().count() > max {
        return Err(TextError::TooLong { field, max });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter { field });
    }
    Ok(trimmed.to_owned())
}

/// A partner's display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PartnerName(String);

impl PartnerName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        clean("name", raw, Self::MAX_CHARS).map(Self)
    }

    /// The name of a partner that signed up without giving one: its email, cut to length (an
    /// email is already trimmed and free of control characters).
    pub fn from_email(email: &Email) -> Self {
        Self(email.as_str().chars().take(Self::MAX_CHARS).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lower-cased so that one mailbox is one account.
///
/// Checks the shape only (one `@`, a dotted domain, no spaces): deliverability is not knowable
/// without sending mail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        let cleaned = clean("email", raw, Self::MAX_CHARS)?.to_lowercase();
        let (local, domain) = cleaned.split_once('@').ok_or(TextError::InvalidEmail)?;
        let well_formed = !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !cleaned.chars().any(char::is_whitespace);
        if well_formed {
            Ok(Self(cleaned))
        } else {
            Err(TextError::InvalidEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_names_are_trimmed_and_bounded() {
        assert_eq!(PartnerName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert_eq!(
            PartnerName::parse("   "),
            Err(TextError::Empty { field: "name" })
        );
        assert!(PartnerName::parse(&"x".repeat(201)).is_err());
        assert!(PartnerName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            PartnerName::parse("a\u{0}b"),
            Err(TextError::ControlCharacter { field: "name" })
        );
    }

    #[test]
    fn names_derived_from_emails_fit_the_name_rules() {
        let long = Email::parse(&format!("{}@example.com", "a".repeat(230))).unwrap();
        let name = PartnerName::from_email(&long);
        assert_eq!(name.as_str().chars().count(), PartnerName::MAX_CHARS);
        assert_eq!(PartnerName::parse(name.as_str()), Ok(name));
    }

    #[test]
    fn emails_are_normalised_and_shape_checked() {
        assert_eq!(
            Email::parse(" Ops@Example.COM ").unwrap().as_str(),
            "ops@example.com"
        );
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
