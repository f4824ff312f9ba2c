//! The simulated org the server guards, and the bodies and tokens the scenarios send.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ipguard::config::{Config, Needs};
use ipguard::keygen::KeyMaterial;
use ipguard::ranges::LoginIpRange;
use ipguard::store::Store;
use ipguard_sim::{SimConfig, SimOrg};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;

use crate::{AUDIENCE, DEBOUNCE, ISSUER};

pub(crate) struct Fixture {
    pub(crate) sim: SimOrg,
    pub(crate) vars: HashMap<&'static str, String>,
    event_key: EncodingKey,
    dir: tempfile::TempDir,
}

pub(crate) async fn fixture() -> Fixture {
    let client_keys = ipguard::keygen::generate("load-client", 1).expect("key");
    let event_keys: KeyMaterial = ipguard::keygen::generate("load-events", 1).expect("key");
    let sim_config = SimConfig::new(client_keys.certificate_pem.clone());
    let profiles: Vec<String> = sim_config.profiles.iter().map(|(n, _)| n.clone()).collect();
    let mut vars: HashMap<&'static str, String> = HashMap::from([
        ("SALESFORCE_CLIENT_ID", sim_config.client_id.clone()),
        ("SALESFORCE_USERNAME", sim_config.username.clone()),
        ("HEROKU_SPACE", sim_config.heroku.space.clone()),
        ("HEROKU_API_TOKEN", sim_config.heroku.api_token.clone()),
        ("IPGUARD_PROFILES", profiles.join(",")),
        ("EVENTS_JWT_CERTS", event_keys.certificate_pem.clone()),
        ("EVENTS_JWT_ISSUER", ISSUER.into()),
        ("EVENTS_JWT_AUDIENCE", AUDIENCE.into()),
        (
            "IPGUARD_DEBOUNCE",
            humantime::format_duration(DEBOUNCE).to_string(),
        ),
        (
            "SALESFORCE_PRIVATE_KEY",
            client_keys.private_key_pem.expose_secret().to_owned(),
        ),
    ]);
    let sim = SimOrg::start(sim_config, 0).await.expect("sim starts");
    vars.insert("SALESFORCE_LOGIN_URL", sim.base_url());
    vars.insert("HEROKU_API_URL", sim.base_url());
    vars.insert("SALESFORCE_ORG_ID", sim.org_id());
    let event_key =
        EncodingKey::from_rsa_pem(event_keys.private_key_pem.expose_secret().as_bytes())
            .expect("event key");
    Fixture {
        sim,
        vars,
        event_key,
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Fixture {
    /// A token as Salesforce's Named Credential would sign it (no `jti`, so it can be reused
    /// across a blast: ipguard then dedupes on the events themselves).
    pub(crate) fn token(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "integration@acme",
            "iat": now, "exp": now + 300,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.event_key)
            .expect("signs")
    }

    pub(crate) fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("load.db").display())
    }
}

pub(crate) fn event_body(i: usize, tag: &str) -> String {
    serde_json::json!({
        "channel": "/event/IPGuard_Profile_Change__e",
        "data": {"schema": "s", "payload": {}, "event": {"replayId": i, "EventUuid": format!("{tag}-{i}")}}
    })
    .to_string()
}

pub(crate) fn notification_id(i: usize) -> String {
    format!("04l{i:015}")
}

pub(crate) fn loose() -> Vec<LoginIpRange> {
    vec![LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None).expect("range")]
}

/// The store the server uses, opened the way the server opens it (reads only, here).
pub(crate) async fn store_for(vars: &HashMap<&'static str, String>) -> Store {
    let config = Config::from_lookup(|k| vars.get(k).cloned(), Needs::serve()).expect("config");
    Store::connect(&config.database).await.expect("store opens")
}

/// Waits until every run has an outcome and none started for `quiet`.
pub(crate) async fn wait_settled(store: &Store, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (0, Instant::now());
    loop {
        let runs = store.recent_runs(1).await.expect("runs");
        let newest = runs.first().map_or(0, |r| r.id);
        let finished = runs.first().is_none_or(|r| r.outcome.is_some());
        if newest != last.0 {
            last = (newest, Instant::now());
        } else if finished && last.1.elapsed() >= quiet {
            return;
        }
        assert!(Instant::now() < deadline, "runs never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
