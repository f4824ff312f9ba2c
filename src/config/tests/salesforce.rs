//! The Salesforce settings: secrets kept out of output, the private key's forms, login URLs
//! and profile names.

use super::*;

#[test]
fn secrets_never_appear_in_debug_output() {
    let key_body_line = key_pem().lines().nth(1).expect("key body");
    let mut vars = salesforce_vars();
    vars.extend([
        (
            DATABASE_URL,
            "postgres://ipguard:pg-password-xyz@db.example.com/ipguard",
        ),
        (HEROKU_SPACE, "my-space"),
        (HEROKU_API_TOKEN, "heroku-token-secret-123"),
        (OUTBOUND_MESSAGE_TOKEN, "outbound_token_secret_456"),
        (IPGUARD_ADMIN_TOKEN, "admin-token-secret-789"),
        (
            IPGUARD_ALERT_WEBHOOK_URL,
            "https://hooks.slack.com/services/T00/B00/webhooksecret",
        ),
    ]);
    let config = ok(&vars, Needs::serve());
    let debug = format!("{config:?}");
    for secret in [
        key_body_line,
        "pg-password-xyz",
        "heroku-token-secret-123",
        "outbound_token_secret_456",
        "admin-token-secret-789",
        "webhooksecret",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
    // The non-secret settings are still there to help debugging.
    assert!(debug.contains("integration@example.com"));
    assert!(debug.contains("my-space"));
}

#[test]
fn bad_secrets_are_not_echoed_in_messages() {
    let bad_key = "-----BEGIN PRIVATE KEY-----\nU0VDUkVUR0FSQkFHRQ==\n-----END PRIVATE KEY-----\n";
    let e = err(
        &[
            (SALESFORCE_PRIVATE_KEY, bad_key),
            (DATABASE_URL, "mysql://root:hunter2-db@db/ipguard"),
            (OUTBOUND_MESSAGE_TOKEN, "sh0rt-s3cret"),
            (IPGUARD_ADMIN_TOKEN, "tiny-s3cret"),
            (
                IPGUARD_ALERT_WEBHOOK_URL,
                "http://hooks.example.com/T0/hooks3cret",
            ),
        ],
        Needs::default(),
    );
    assert_eq!(
        variables(&e),
        [
            DATABASE_URL,
            SALESFORCE_PRIVATE_KEY,
            OUTBOUND_MESSAGE_TOKEN,
            IPGUARD_ADMIN_TOKEN,
            IPGUARD_ALERT_WEBHOOK_URL
        ]
    );
    let text = e.to_string();
    for secret in [
        "U0VDUkVUR0FSQkFHRQ",
        "hunter2-db",
        "sh0rt-s3cret",
        "tiny-s3cret",
        "hooks3cret",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
    }
    assert!(
        message_for(&e, SALESFORCE_PRIVATE_KEY)
            .contains("expected an RSA private key in PEM (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1)")
    );
}

#[test]
fn private_key_with_escaped_newlines_is_accepted() {
    let escaped = key_pem().replace('\n', "\\n");
    assert!(!escaped.contains('\n'));
    let mut vars = salesforce_vars();
    vars.retain(|(k, _)| *k != SALESFORCE_PRIVATE_KEY);
    vars.push((SALESFORCE_PRIVATE_KEY, &escaped));
    let config = ok(&vars, Needs::salesforce());
    let stored = config.orgs[0]
        .salesforce
        .credentials
        .clone()
        .expect("credentials")
        .key;
    // RS256 signatures are deterministic: the same claims signed alike mean the same key.
    let claims = serde_json::json!({ "sub": "integration@example.com" });
    let expected = crate::salesforce::auth::SigningKey::from_rsa_pem(key_pem()).unwrap();
    assert_eq!(
        stored.sign(&claims).unwrap().expose_secret(),
        expected.sign(&claims).unwrap().expose_secret()
    );
}

#[test]
fn private_key_from_file_and_pkcs1_form() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    let key = rsa::PrivateKey::from_pkcs8_pem(key_pem()).expect("test key");
    let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("pkcs1");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.pem");
    std::fs::write(&path, pkcs1.as_bytes()).expect("write");
    let path = path.to_str().expect("utf8 path");

    let mut vars = salesforce_vars();
    vars.retain(|(k, _)| *k != SALESFORCE_PRIVATE_KEY);
    vars.push((SALESFORCE_PRIVATE_KEY_FILE, path));
    let config = ok(&vars, Needs::salesforce());
    let stored = config.orgs[0]
        .salesforce
        .credentials
        .clone()
        .expect("credentials")
        .key;
    let claims = serde_json::json!({ "sub": "integration@example.com" });
    let expected = crate::salesforce::auth::SigningKey::from_rsa_pem(&pkcs1).unwrap();
    assert_eq!(
        stored.sign(&claims).unwrap().expose_secret(),
        expected.sign(&claims).unwrap().expose_secret()
    );

    let e = err(
        &[
            (SALESFORCE_PRIVATE_KEY_FILE, path),
            (SALESFORCE_PRIVATE_KEY, key_pem()),
        ],
        Needs::default(),
    );
    assert_eq!(variables(&e), [SALESFORCE_PRIVATE_KEY_FILE]);
    assert!(message_for(&e, SALESFORCE_PRIVATE_KEY_FILE).contains("only one"));
}

#[test]
fn non_rsa_or_non_key_pem_is_refused_with_the_expected_forms() {
    for (pem, hint) in [
        (cert_pem().to_owned(), "found a `CERTIFICATE` PEM block"),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
            "encrypted",
        ),
        // Well-formed armour around DER that is not an RSA key.
        (
            "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n".to_owned(),
            "does not parse as an RSA key",
        ),
    ] {
        let e = err(&[(SALESFORCE_PRIVATE_KEY, &pem)], Needs::default());
        let message = message_for(&e, SALESFORCE_PRIVATE_KEY);
        assert!(message.contains(hint), "{message}");
        assert!(message.contains(RSA_KEY_EXPECTED), "{message}");
    }
}

#[test]
fn login_url_forms_and_audience_defaults() {
    let cases = [
        (
            "https://login.salesforce.com",
            "https://login.salesforce.com/",
            LOGIN_AUDIENCE,
        ),
        (
            "https://test.salesforce.com/",
            "https://test.salesforce.com/",
            TEST_AUDIENCE,
        ),
        (
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com/",
            TEST_AUDIENCE,
        ),
        (
            "https://acme.my.salesforce.com",
            "https://acme.my.salesforce.com/",
            LOGIN_AUDIENCE,
        ),
        (
            "http://127.0.0.1:9999",
            "http://127.0.0.1:9999/",
            LOGIN_AUDIENCE,
        ),
        (
            "http://localhost:9999/",
            "http://localhost:9999/",
            LOGIN_AUDIENCE,
        ),
    ];
    for (value, url, audience) in cases {
        let config = ok(&[(SALESFORCE_LOGIN_URL, value)], Needs::default());
        assert_eq!(config.orgs[0].salesforce.login_url.as_str(), url, "{value}");
        assert_eq!(config.orgs[0].salesforce.audience, audience, "{value}");
    }
    let config = ok(
        &[(SALESFORCE_LOGIN_URL, "https://acme.my.salesforce.com")],
        Needs::default(),
    );
    assert_eq!(
        config.orgs[0]
            .salesforce
            .login_url
            .join("/services/oauth2/token")
            .expect("join")
            .as_str(),
        "https://acme.my.salesforce.com/services/oauth2/token"
    );
    // An explicit audience wins over the default.
    let config = ok(
        &[
            (
                SALESFORCE_LOGIN_URL,
                "https://acme--uat.sandbox.my.salesforce.com",
            ),
            (SALESFORCE_AUDIENCE, "https://login.salesforce.com"),
        ],
        Needs::default(),
    );
    assert_eq!(config.orgs[0].salesforce.audience, LOGIN_AUDIENCE);
}

/// A name Salesforce could never return (it would become a zip path outside `profiles/`) is
/// in the start-up report beside every other problem, not found later by the first run.
#[test]
fn a_bad_profile_name_is_reported_with_the_other_problems() {
    let mut vars = salesforce_vars();
    vars.retain(|(k, _)| *k != IPGUARD_PROFILES && *k != SALESFORCE_USERNAME);
    vars.push((IPGUARD_PROFILES, "Admin, ../Sales/Ops"));
    vars.push((SALESFORCE_USERNAME, "Integration User"));
    let e = err(&vars, Needs::salesforce());
    assert_eq!(variables(&e), [SALESFORCE_USERNAME, IPGUARD_PROFILES]);
    assert!(message_for(&e, IPGUARD_PROFILES).contains("`../Sales/Ops` contains `/`"));

    let mut vars = salesforce_vars();
    vars.push((IPGUARD_EXACT_PROFILES, "Admin"));
    let config = ok(&vars, Needs::salesforce());
    assert_eq!(config.orgs[0].exact_profiles, ["Admin"]);
}

#[test]
fn profiles_are_verbatim_trimmed_and_deduplicated() {
    let config = ok(
        &[(IPGUARD_PROFILES, " Admin ,, Custom%3A Integration ,")],
        Needs::default(),
    );
    assert_eq!(
        config.orgs[0].profiles.named,
        ["Admin", "Custom%3A Integration"]
    );

    let e = err(
        &[(IPGUARD_PROFILES, "Admin,Custom%3A Sales,Admin,Admin")],
        Needs::default(),
    );
    assert_eq!(variables(&e), [IPGUARD_PROFILES], "reported once:\n{e}");
    assert!(message_for(&e, IPGUARD_PROFILES).contains("`Admin`"));
}
