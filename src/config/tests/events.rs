//! `EVENTS_JWT_*`: how platform-event callouts are verified.

use super::*;

#[test]
fn events_jwt_settings() {
    let two_certs = format!("{}\n{}", cert_pem(), cert_pem());
    let public_key = {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        rsa::PrivateKey::from_pkcs8_pem(key_pem())
            .expect("key")
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("public pem")
    };
    let escaped = cert_pem().replace('\n', "\\n");
    for certs in [
        cert_pem(),
        two_certs.as_str(),
        public_key.as_str(),
        escaped.as_str(),
    ] {
        let config = ok(
            &[
                (EVENTS_JWT_CERTS, certs),
                (EVENTS_JWT_ISSUER, "3MVG9issuer"),
                (EVENTS_JWT_AUDIENCE, "https://ipguard.example.com"),
            ],
            Needs {
                events: true,
                ..Needs::default()
            },
        );
        let events = config.events_jwt.expect("events");
        assert!(!events.keys_pem.contains("\\n"));
        assert_eq!(events.issuer, "3MVG9issuer");
        assert_eq!(events.audience, "https://ipguard.example.com");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("certs.pem");
    std::fs::write(&path, cert_pem()).expect("write");
    let path = path.to_str().expect("utf8");
    let config = ok(
        &[
            (EVENTS_JWT_CERTS_FILE, path),
            (EVENTS_JWT_ISSUER, "iss"),
            (EVENTS_JWT_AUDIENCE, "aud"),
        ],
        Needs::default(),
    );
    assert_eq!(config.events_jwt.expect("events").keys_pem, cert_pem());

    let e = err(
        &[
            (EVENTS_JWT_CERTS_FILE, path),
            (EVENTS_JWT_CERTS, cert_pem()),
            (EVENTS_JWT_ISSUER, "iss"),
            (EVENTS_JWT_AUDIENCE, "aud"),
        ],
        Needs::default(),
    );
    assert_eq!(variables(&e), [EVENTS_JWT_CERTS_FILE]);

    let e = err(
        &[
            (EVENTS_JWT_CERTS_FILE, "/nonexistent/certs.pem"),
            (EVENTS_JWT_ISSUER, "iss"),
            (EVENTS_JWT_AUDIENCE, "aud"),
        ],
        Needs::default(),
    );
    assert_eq!(variables(&e), [EVENTS_JWT_CERTS_FILE]);
    assert!(
        message_for(&e, EVENTS_JWT_CERTS_FILE).contains("cannot read `/nonexistent/certs.pem`")
    );
}

#[test]
fn events_jwt_rejects_bad_or_private_material() {
    let corrupt_cert = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
    let with_private = format!("{}{}", cert_pem(), key_pem());
    for (certs, hint) in [
        ("no pem here", "no PEM block"),
        (corrupt_cert, "certificate 1 does not parse"),
        (key_pem(), "private key"),
        (with_private.as_str(), "block 2 is a private key"),
    ] {
        let e = err(
            &[
                (EVENTS_JWT_CERTS, certs),
                (EVENTS_JWT_ISSUER, "iss"),
                (EVENTS_JWT_AUDIENCE, "aud"),
            ],
            Needs::default(),
        );
        assert_eq!(variables(&e), [EVENTS_JWT_CERTS], "{e}");
        let message = message_for(&e, EVENTS_JWT_CERTS);
        assert!(message.contains(hint), "{message}");
    }
}

#[test]
fn events_jwt_settings_come_as_a_set() {
    let e = err(&[(EVENTS_JWT_ISSUER, "iss")], Needs::default());
    assert_eq!(variables(&e), [EVENTS_JWT_CERTS, EVENTS_JWT_AUDIENCE]);
    assert!(message_for(&e, EVENTS_JWT_AUDIENCE).contains("because EVENTS_JWT_ISSUER is set"));

    let e = err(&[(EVENTS_JWT_CERTS, cert_pem())], Needs::default());
    assert_eq!(variables(&e), [EVENTS_JWT_ISSUER, EVENTS_JWT_AUDIENCE]);
}
