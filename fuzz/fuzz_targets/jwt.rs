//! Arbitrary strings as the bearer token of a platform-event callout: verified against a key
//! generated once, refused (never a panic) otherwise. The refusal text is returned to callers,
//! so it is checked to be the documented safe subset of ASCII.
#![no_main]

use std::sync::OnceLock;

use ipguard::config::EventsJwtSettings;
use ipguard::ingress::jwt::EventsVerifier;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_750_000_000;

fn verifier() -> &'static EventsVerifier {
    static VERIFIER: OnceLock<EventsVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let keys = ipguard::keygen::generate("ipguard-fuzz", 2).expect("key");
        EventsVerifier::from_settings(&EventsJwtSettings {
            keys_pem: keys.certificate_pem,
            issuer: "https://acme.my.salesforce.com".into(),
            audience: "https://ipguard.example".into(),
        })
        .expect("verifier")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(rejection) = verifier().verify(token, NOW) {
        assert!(
            rejection
                .description
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'),
            "unsafe error_description: {:?}",
            rejection.description
        );
    }
});
