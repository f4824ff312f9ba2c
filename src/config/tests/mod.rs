//! `Config::from_lookup`: defaults, parsing and how problems are reported here; the Salesforce
//! settings, event-callout verification and the policy in files of their own.

use super::values::is_api_version;
use super::*;
use crate::keygen;
use secrecy::ExposeSecret;
use std::collections::HashMap;

mod events;
mod orgs;
mod policy;
mod salesforce;
mod side_doors;

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

fn variables(err: &ConfigError) -> Vec<&str> {
    err.problems.iter().map(|p| p.variable.as_str()).collect()
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
        config.orgs[0].salesforce.login_url.as_str(),
        "https://login.salesforce.com/"
    );
    assert_eq!(
        config.orgs[0].salesforce.audience,
        "https://login.salesforce.com"
    );
    assert_eq!(config.orgs[0].salesforce.api_version, "66.0");
    assert!(config.orgs[0].salesforce.credentials.is_none());
    assert!(config.orgs[0].salesforce.org_id.is_none());
    assert!(config.orgs[0].profiles.is_empty());
    assert!(config.source_ips.is_empty());
    assert!(config.heroku.is_none());
    assert_eq!(config.orgs[0].policy, Policy::Merge);
    assert_eq!(config.orgs[0].mode, Mode::Enforce);
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
        config.orgs[0].salesforce.org_id.as_ref().map(OrgId::as_str),
        Some("00D000000000062EAA")
    );
    assert_eq!(config.orgs[0].salesforce.api_version, "64.0");
    assert_eq!(config.orgs[0].policy, Policy::Exact);
    assert_eq!(config.orgs[0].mode, Mode::DryRun);
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
    let credentials = config.orgs[0]
        .salesforce
        .credentials
        .clone()
        .expect("credentials");
    assert_eq!(credentials.client_id, "3MVG9consumerkey");
    assert_eq!(credentials.username, "integration@example.com");

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
