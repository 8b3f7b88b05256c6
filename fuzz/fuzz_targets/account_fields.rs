//! Sign-up and login fields (JSON API and portal forms alike): email, password, partner name.
#![no_main]

use epai_domain::{Email, PartnerName, Password};
use epai_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(raw) = text(data) else { return };
    if let Ok(email) = Email::parse(raw) {
        assert!(email.as_str().contains('@'));
        assert_eq!(
            Email::parse(email.as_str()).as_ref(),
            Ok(&email),
            "parsing is stable"
        );
        let name = PartnerName::from_email(&email);
        assert_eq!(PartnerName::parse(name.as_str()).as_ref(), Ok(&name));
    }
    if let Ok(name) = PartnerName::parse(raw) {
        assert_eq!(PartnerName::parse(name.as_str()).as_ref(), Ok(&name));
    }
    if let Ok(password) = Password::parse(raw) {
        assert_eq!(password.expose(), raw);
        let other = Password::parse("another password altogether").unwrap();
        assert_eq!(
            format!("{password:?}"),
            format!("{other:?}"),
            "Debug depends on the password"
        );
    }
});
