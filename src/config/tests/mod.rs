use super::*;
use crate::keygen;
use secrecy::ExposeSecret;
use std::collections::HashMap;

fn load(vars: &[(&str, &str)], needs: Needs) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| env.get(name).cloned(), needs)
}

fn ok(vars: &[(&str, &str)], needs: Needs) -> Config {
    match load(vars, needs) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{err}"),
    }
}

fn err(vars: &[(&str, &str)], needs: Needs) -> ConfigError {
    match load(vars, needs) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(err) => err,
    }
}

fn variables(err: &ConfigError) -> Vec<&'static str> {
    err.problems.iter().map(|p| p.variable).collect()
}

fn message_for<'e>(err: &'e ConfigError, variable: &str) -> &'e str {
    err.problems
        .iter()
        .find(|p| p.variable == variable)
        .map(|p| p.message.as_str())
        .unwrap_or_else(|| panic!("no problem for {variable} in:\n{err}"))
}

/// One key for the whole test binary: RSA generation is slow in debug builds.
fn test_material() -> &'static keygen::KeyMaterial {
    static MATERIAL: std::sync::OnceLock<keygen::KeyMaterial> = std::sync::OnceLock::new();
    MATERIAL.get_or_init(|| keygen::generate("ipguard-test", 30).expect("test key generation"))
}

fn key_pem() -> &'static str {
    test_material().private_key_pem.expose_secret()
}

fn cert_pem() -> &'static str {
    &test_material().certificate_pem
}

/// A valid set for `Needs::salesforce()` with the key inline.
fn salesforce_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        (SALESFORCE_CLIENT_ID, "3MVG9consumerkey"),
        (SALESFORCE_USERNAME, "integration@example.com"),
        (SALESFORCE_PRIVATE_KEY, key_pem()),
        (IPGUARD_PROFILES, "Admin, Custom%3A Integration"),
        (IPGUARD_SOURCE_IPS, "52.1.2.3"),
    ]
}

#[test]
fn defaults_when_nothing_is_set() {
    let config = ok(&[], Needs::default());
    assert_eq!(config.port, 8080);
    assert!(
        matches!(&config.database, DatabaseUrl::Sqlite { path } if path == &PathBuf::from("ipguard.db"))
    );
    assert_eq!(
        config.salesforce.login_url.as_str(),
        "https://login.salesforce.com/"
    );
    assert_eq!(config.salesforce.audience, "https://login.salesforce.com");
    assert_eq!(config.salesforce.api_version, "66.0");
    assert!(config.salesforce.client_id.is_none());
    assert!(config.salesforce.username.is_none());
    assert!(config.salesforce.private_key_pem.is_none());
    assert!(config.salesforce.org_id.is_none());
    assert!(config.profiles.is_empty());
    assert!(config.source_ips.is_empty());
    assert!(config.heroku.is_none());
    assert_eq!(config.policy, Policy::Merge);
    assert_eq!(config.mode, Mode::Enforce);
    assert_eq!(config.resync_interval, Duration::from_secs(600));
    assert_eq!(config.debounce, Duration::from_secs(2));
    assert_eq!(config.deploy_timeout, Duration::from_secs(1800));
    assert!(config.events_jwt.is_none());
    assert!(config.outbound_message_token.is_none());
    assert!(config.admin_token.is_none());
    assert!(config.alert_webhook_url.is_none());
    assert_eq!(config.rust_log, "info");
}

#[test]
fn empty_and_blank_values_count_as_unset() {
    let config = ok(
        &[
            (PORT, ""),
            (DATABASE_URL, "  "),
            (IPGUARD_POLICY, ""),
            (HEROKU_SPACE, ""),
            (HEROKU_API_TOKEN, ""),
            (RUST_LOG, ""),
        ],
        Needs::default(),
    );
    assert_eq!(config.port, 8080);
    assert!(config.heroku.is_none());
    assert_eq!(config.rust_log, "info");
}

#[test]
fn values_are_parsed_into_types() {
    let config = ok(
        &[
            (PORT, " 5000 "),
            (
                DATABASE_URL,
                "postgres://user:pw@db.example.com:5432/ipguard",
            ),
            (SALESFORCE_ORG_ID, "00D000000000062"),
            (SALESFORCE_API_VERSION, "64.0"),
            (IPGUARD_POLICY, "exact"),
            (IPGUARD_MODE, "dry-run"),
            (IPGUARD_RESYNC_INTERVAL, "1h 30m"),
            (IPGUARD_DEBOUNCE, "500ms"),
            (IPGUARD_DEPLOY_TIMEOUT, "45m"),
            (OUTBOUND_MESSAGE_TOKEN, "abcdefghij_KLMN-0123"),
            (IPGUARD_ADMIN_TOKEN, "any characters! 16+"),
            (
                IPGUARD_ALERT_WEBHOOK_URL,
                "https://hooks.slack.com/services/T0/B0/x",
            ),
            (RUST_LOG, "ipguard=debug,info"),
        ],
        Needs::default(),
    );
    assert_eq!(config.port, 5000);
    assert!(matches!(
        &config.database,
        DatabaseUrl::Postgres { url } if url.expose_secret() == "postgres://user:pw@db.example.com:5432/ipguard"
    ));
    assert_eq!(
        config.salesforce.org_id.as_ref().map(OrgId::as_str),
        Some("00D000000000062EAA")
    );
    assert_eq!(config.salesforce.api_version, "64.0");
    assert_eq!(config.policy, Policy::Exact);
    assert_eq!(config.mode, Mode::DryRun);
    assert_eq!(config.resync_interval, Duration::from_secs(5400));
    assert_eq!(config.debounce, Duration::from_millis(500));
    assert_eq!(config.deploy_timeout, Duration::from_secs(2700));
    assert_eq!(
        config
            .outbound_message_token
            .as_ref()
            .map(|s| s.expose_secret()),
        Some("abcdefghij_KLMN-0123")
    );
    assert!(config.admin_token.is_some());
    assert!(config.alert_webhook_url.is_some());
    assert_eq!(config.rust_log, "ipguard=debug,info");
}

#[test]
fn database_urls() {
    for (value, expected) in [
        ("sqlite://data/ipguard.db", "data/ipguard.db"),
        ("sqlite:ipguard.db", "ipguard.db"),
        ("sqlite:///var/lib/ipguard.db", "/var/lib/ipguard.db"),
    ] {
        let config = ok(&[(DATABASE_URL, value)], Needs::default());
        assert!(
            matches!(&config.database, DatabaseUrl::Sqlite { path } if path == &PathBuf::from(expected)),
            "{value} → {:?}",
            config.database
        );
    }
    let config = ok(
        &[(DATABASE_URL, "postgresql://u:p@localhost/db")],
        Needs::default(),
    );
    assert!(matches!(config.database, DatabaseUrl::Postgres { .. }));

    let e = err(&[(DATABASE_URL, "mysql://u:p@host/db")], Needs::default());
    assert_eq!(variables(&e), [DATABASE_URL]);
    let message = message_for(&e, DATABASE_URL);
    assert!(message.contains("sqlite://") && message.contains("postgres://"));
}

#[test]
fn a_bad_postgres_option_is_in_the_start_up_report_without_the_password() {
    let e = err(
        &[(
            DATABASE_URL,
            "postgres://ipguard:hunter2-db@db.example.com/ipguard?sslmode=requier",
        )],
        Needs::default(),
    );
    assert_eq!(variables(&e), [DATABASE_URL]);
    let message = message_for(&e, DATABASE_URL);
    assert!(message.contains("requier"), "{message}");
    assert!(message.contains("ssl"), "{message}");
    assert!(!e.to_string().contains("hunter2-db"), "{e}");
}

#[test]
fn each_invalid_value_is_reported_on_its_variable() {
    let cases: &[(&str, &str)] = &[
        (PORT, "http"),
        (PORT, "65536"),
        (DATABASE_URL, "ipguard.db"),
        (DATABASE_URL, "sqlite://"),
        (DATABASE_URL, "sqlite://x.db?mode=rwc"),
        (DATABASE_URL, "postgres://"),
        (SALESFORCE_LOGIN_URL, "login.salesforce.com"),
        (SALESFORCE_LOGIN_URL, "http://login.salesforce.com"),
        (
            SALESFORCE_LOGIN_URL,
            "https://login.salesforce.com/services/oauth2/token",
        ),
        (SALESFORCE_LOGIN_URL, "https://login.salesforce.com/?x=1"),
        (SALESFORCE_LOGIN_URL, "https://user:pw@login.salesforce.com"),
        (SALESFORCE_AUDIENCE, "login.salesforce.com"),
        (SALESFORCE_USERNAME, "Integration User"),
        (SALESFORCE_PRIVATE_KEY, "not a key"),
        (SALESFORCE_PRIVATE_KEY_FILE, "/nonexistent/ipguard.key"),
        (SALESFORCE_ORG_ID, "005000000000062"),
        (SALESFORCE_ORG_ID, "00D000000000062EAB"),
        (SALESFORCE_API_VERSION, "66"),
        (SALESFORCE_API_VERSION, "v66.0"),
        (SALESFORCE_API_VERSION, "66.1"),
        (SALESFORCE_API_VERSION, "1234.0"),
        (IPGUARD_PROFILES, "Admin,Admin"),
        (IPGUARD_SOURCE_IPS, "not-an-ip"),
        (IPGUARD_SOURCE_IPS, "10.0.0.1/24"),
        (IPGUARD_SOURCE_IPS, "10.0.0.0/33"),
        (HEROKU_API_URL, "http://api.heroku.com"),
        (IPGUARD_POLICY, "strict"),
        (IPGUARD_MODE, "dryrun"),
        (IPGUARD_RESYNC_INTERVAL, "0s"),
        (IPGUARD_RESYNC_INTERVAL, "soon"),
        (IPGUARD_DEBOUNCE, "2"),
        (IPGUARD_DEPLOY_TIMEOUT, "0m"),
        (OUTBOUND_MESSAGE_TOKEN, "short"),
        (OUTBOUND_MESSAGE_TOKEN, "has/a/slash/in/it/too"),
        (IPGUARD_ADMIN_TOKEN, "short"),
        (
            IPGUARD_ALERT_WEBHOOK_URL,
            "http://hooks.slack.com/services/x",
        ),
        (IPGUARD_ALERT_WEBHOOK_URL, "not a url"),
        (RUST_LOG, "ipguard=loudest"),
    ];
    for &(variable, value) in cases {
        let e = err(&[(variable, value)], Needs::default());
        assert!(
            !e.problems.is_empty() && variables(&e).iter().all(|v| *v == variable),
            "{variable}={value:?} gave:\n{e}"
        );
    }
}

#[test]
fn several_problems_are_reported_together_one_per_line() {
    let e = err(
        &[
            (PORT, "eighty"),
            (IPGUARD_POLICY, "strict"),
            (IPGUARD_MODE, "yolo"),
            (IPGUARD_SOURCE_IPS, "1.2.3.4, bogus, 10.0.0.1/24"),
        ],
        Needs::default(),
    );
    assert_eq!(
        variables(&e),
        [
            PORT,
            IPGUARD_SOURCE_IPS,
            IPGUARD_SOURCE_IPS,
            IPGUARD_POLICY,
            IPGUARD_MODE
        ]
    );
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("PORT: `eighty` is not a port number"));
    assert!(lines[1].starts_with("IPGUARD_SOURCE_IPS: `bogus`"));
    assert_eq!(
        lines[2],
        "IPGUARD_SOURCE_IPS: `10.0.0.1/24` has host bits set; did you mean `10.0.0.0/24`?"
    );
    assert!(lines[3].starts_with("IPGUARD_POLICY: `strict` is not a policy"));
    assert!(lines[4].starts_with("IPGUARD_MODE: `yolo` is not a mode"));
}

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
    let stored = config.salesforce.private_key_pem.expect("key");
    assert_eq!(stored.expose_secret(), key_pem());
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

    let config = ok(&[(SALESFORCE_PRIVATE_KEY_FILE, path)], Needs::default());
    assert_eq!(
        config
            .salesforce
            .private_key_pem
            .as_ref()
            .map(|k| k.expose_secret()),
        Some(pkcs1.as_str())
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
        assert_eq!(config.salesforce.login_url.as_str(), url, "{value}");
        assert_eq!(config.salesforce.audience, audience, "{value}");
    }
    let config = ok(
        &[(SALESFORCE_LOGIN_URL, "https://acme.my.salesforce.com")],
        Needs::default(),
    );
    assert_eq!(
        config
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
    assert_eq!(config.salesforce.audience, LOGIN_AUDIENCE);
}

#[test]
fn profiles_are_verbatim_trimmed_and_deduplicated() {
    let config = ok(
        &[(IPGUARD_PROFILES, " Admin ,, Custom%3A Integration ,")],
        Needs::default(),
    );
    assert_eq!(config.profiles, ["Admin", "Custom%3A Integration"]);

    let e = err(
        &[(IPGUARD_PROFILES, "Admin,Custom%3A Sales,Admin,Admin")],
        Needs::default(),
    );
    assert_eq!(variables(&e), [IPGUARD_PROFILES], "reported once:\n{e}");
    assert!(message_for(&e, IPGUARD_PROFILES).contains("`Admin`"));
}

#[test]
fn source_ips_become_networks_and_bad_entries_are_named() {
    let config = ok(
        &[(
            IPGUARD_SOURCE_IPS,
            "52.1.2.3, 10.0.0.0/28,2001:db8::1,2001:db8::/64",
        )],
        Needs::sources(),
    );
    let nets: Vec<String> = config.source_ips.iter().map(ToString::to_string).collect();
    assert_eq!(
        nets,
        [
            "52.1.2.3/32",
            "10.0.0.0/28",
            "2001:db8::1/128",
            "2001:db8::/64"
        ]
    );

    let e = err(
        &[(IPGUARD_SOURCE_IPS, "1.2.3, 52.1.2.3, ::g")],
        Needs::default(),
    );
    assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS, IPGUARD_SOURCE_IPS]);
    assert!(e.problems[0].message.contains("`1.2.3`"));
    assert!(e.problems[1].message.contains("`::g`"));
    let e = err(&[(IPGUARD_SOURCE_IPS, "2001:db8::1/64")], Needs::default());
    assert!(message_for(&e, IPGUARD_SOURCE_IPS).contains("`2001:db8::/64`"));
}

#[test]
fn heroku_settings_come_as_a_pair() {
    let config = ok(
        &[(HEROKU_SPACE, "acme-space"), (HEROKU_API_TOKEN, "hrku-abc")],
        Needs::sources(),
    );
    let heroku = config.heroku.expect("heroku");
    assert_eq!(heroku.space, "acme-space");
    assert_eq!(heroku.api_token.expose_secret(), "hrku-abc");
    assert_eq!(heroku.api_url.as_str(), "https://api.heroku.com/");

    let config = ok(
        &[
            (HEROKU_SPACE, "acme-space"),
            (HEROKU_API_TOKEN, "hrku-abc"),
            (HEROKU_API_URL, "http://127.0.0.1:4567"),
        ],
        Needs::default(),
    );
    assert_eq!(
        config.heroku.expect("heroku").api_url.as_str(),
        "http://127.0.0.1:4567/"
    );

    let e = err(&[(HEROKU_SPACE, "acme-space")], Needs::sources());
    // The missing partner is the problem; "no source" would be noise on top.
    assert_eq!(variables(&e), [HEROKU_API_TOKEN]);
    let e = err(&[(HEROKU_API_TOKEN, "hrku-abc")], Needs::sources());
    assert_eq!(variables(&e), [HEROKU_SPACE]);
    let e = err(
        &[(HEROKU_SPACE, "../apps"), (HEROKU_API_TOKEN, "hrku-abc")],
        Needs::default(),
    );
    assert_eq!(variables(&e), [HEROKU_SPACE]);
}

#[test]
fn needs_decide_what_is_required() {
    assert_eq!(
        Needs::default(),
        Needs {
            sources: false,
            salesforce: false,
            events: false
        }
    );
    assert_eq!(
        Needs::sources(),
        Needs {
            sources: true,
            salesforce: false,
            events: false
        }
    );
    assert_eq!(
        Needs::salesforce(),
        Needs {
            sources: true,
            salesforce: true,
            events: false
        }
    );
    assert_eq!(Needs::serve(), Needs::salesforce());

    ok(&[], Needs::default());

    let e = err(&[], Needs::sources());
    assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS]);
    let message = message_for(&e, IPGUARD_SOURCE_IPS);
    assert!(message.contains("IPGUARD_SOURCE_IPS") && message.contains("HEROKU_SPACE"));
    // A list of only separators names no source either.
    let e = err(&[(IPGUARD_SOURCE_IPS, " , ")], Needs::sources());
    assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS]);
    ok(&[(IPGUARD_SOURCE_IPS, "52.1.2.3")], Needs::sources());

    let e = err(&[], Needs::salesforce());
    assert_eq!(
        variables(&e),
        [
            SALESFORCE_CLIENT_ID,
            SALESFORCE_USERNAME,
            SALESFORCE_PRIVATE_KEY,
            IPGUARD_PROFILES,
            IPGUARD_SOURCE_IPS
        ]
    );
    assert!(message_for(&e, SALESFORCE_PRIVATE_KEY).contains("SALESFORCE_PRIVATE_KEY_FILE"));
    let config = ok(&salesforce_vars(), Needs::salesforce());
    assert_eq!(
        config.salesforce.client_id.as_deref(),
        Some("3MVG9consumerkey")
    );
    assert_eq!(
        config.salesforce.username.as_deref(),
        Some("integration@example.com")
    );

    let e = err(
        &[],
        Needs {
            events: true,
            ..Needs::default()
        },
    );
    assert_eq!(
        variables(&e),
        [EVENTS_JWT_CERTS, EVENTS_JWT_ISSUER, EVENTS_JWT_AUDIENCE]
    );
    assert!(message_for(&e, EVENTS_JWT_ISSUER).contains("/salesforce/events"));
}

#[test]
fn invalid_username_is_not_also_reported_missing() {
    let mut vars = salesforce_vars();
    vars.retain(|(k, _)| *k != SALESFORCE_USERNAME);
    vars.push((SALESFORCE_USERNAME, "Integration User"));
    let e = err(&vars, Needs::salesforce());
    assert_eq!(variables(&e), [SALESFORCE_USERNAME]);
    assert!(message_for(&e, SALESFORCE_USERNAME).contains("email"));
}

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

#[test]
fn exact_profiles_and_keep_within() {
    let mut vars = salesforce_vars();
    vars.push((IPGUARD_EXACT_PROFILES, "Custom%3A Integration"));
    vars.push((IPGUARD_KEEP_WITHIN, "10.0.0.0/8, 198.51.100.7"));
    let config = ok(&vars, Needs::salesforce());
    assert_eq!(config.exact_profiles, ["Custom%3A Integration"]);
    let keep: Vec<String> = config
        .keep_within
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keep, ["10.0.0.0/8", "198.51.100.7/32"]);
    assert_eq!(
        ok(&salesforce_vars(), Needs::salesforce()).keep_within,
        None
    );

    // a profile that is not managed, and a bad CIDR: both reported, on their variables
    let mut vars = salesforce_vars();
    vars.push((IPGUARD_EXACT_PROFILES, "Custom: Integration"));
    vars.push((IPGUARD_KEEP_WITHIN, "10.0.0.0/33"));
    let err = err(&vars, Needs::salesforce());
    assert!(message_for(&err, IPGUARD_EXACT_PROFILES).contains("not in IPGUARD_PROFILES"));
    assert!(!message_for(&err, IPGUARD_KEEP_WITHIN).is_empty());
}

#[test]
fn policy_and_mode_names() {
    assert_eq!(Policy::Merge.as_str(), "merge");
    assert_eq!(Policy::Exact.to_string(), "exact");
    assert_eq!(Mode::Enforce.as_str(), "enforce");
    assert_eq!(Mode::DryRun.as_str(), "dry-run");
    assert_eq!(
        serde_json::to_string(&Policy::Exact).expect("json"),
        "\"exact\""
    );
    assert_eq!(
        serde_json::to_string(&Mode::DryRun).expect("json"),
        "\"dry-run\""
    );
    assert_eq!(
        serde_json::from_str::<Mode>("\"dry-run\"").expect("json"),
        Mode::DryRun
    );
    assert_eq!(
        serde_json::from_str::<Policy>("\"merge\"").expect("json"),
        Policy::Merge
    );
    // The parser accepts exactly what as_str produces.
    for mode in [Mode::Enforce, Mode::DryRun] {
        assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
    }
    for policy in [Policy::Merge, Policy::Exact] {
        assert_eq!(policy.as_str().parse::<Policy>(), Ok(policy));
    }
    // Names are exact: no case folding, no near misses.
    let e = "Merge".parse::<Policy>().expect_err("case matters");
    assert_eq!(e.value, "Merge");
    assert!("dry_run".parse::<Mode>().is_err());
}

#[test]
fn api_version_shape() {
    for good in ["66.0", "10.0", "100.0"] {
        assert!(is_api_version(good), "{good}");
    }
    for bad in [
        "6.0", "1000.0", "66", "66.00", "66.1", "6a.0", ".0", "", "٦٦.0",
    ] {
        assert!(!is_api_version(bad), "{bad}");
    }
}
