//! Webhook requests: create, update and rotate bodies, ids in paths, target URLs (checked before
//! any address is resolved), subscribable event types and signing secrets.
#![no_main]

use epai_domain::WebhookEventType;
use epai_fuzz::{assert_client_error, text};
use epai_server::parsing::{CreateWebhook, RotateSecret, UpdateWebhook, parse_json, webhook_id};
use epai_webhooks::{MAX_URL_LENGTH, SigningSecret, UrlPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for error in [
        parse_json::<CreateWebhook>(data).err(),
        parse_json::<UpdateWebhook>(data).err(),
        parse_json::<RotateSecret>(data).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_client_error(&error, data);
    }
    let Some(raw) = text(data) else { return };
    // A fixed message (the fuzzer once sent the message itself as an id).
    if let Err(error) = webhook_id(raw) {
        assert_eq!(error.status.as_u16(), 404);
        assert_eq!(error.detail, "no webhook with this id");
    }
    for policy in [
        UrlPolicy::default(),
        UrlPolicy {
            allow_private: true,
            http_hosts: vec!["localhost".into()],
        },
    ] {
        if let Ok(url) = policy.parse(raw) {
            assert!(raw.len() <= MAX_URL_LENGTH);
            assert!(url.username().is_empty() && url.password().is_none());
            assert!(matches!(url.scheme(), "https" | "http"));
            if url.scheme() == "http" {
                assert_eq!(url.host_str(), Some("localhost"));
            }
        }
    }
    if let Ok(kind) = WebhookEventType::parse_subscribable(raw) {
        assert_eq!(kind.as_str(), raw);
    }
    if let Ok(secret) = SigningSecret::parse(raw) {
        assert!(
            !format!("{secret:?}").contains(raw),
            "Debug shows the secret"
        );
    }
});
