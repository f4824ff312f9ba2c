//! `ipguard serve` over HTTP against the simulated org: webhooks in, runs out.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use ipguard::app::{Application, Overrides};
use ipguard::config::{Config, Needs};
use ipguard::ranges::LoginIpRange;
use ipguard::reconcile::controller::ControllerTiming;
use ipguard::salesforce::client::RetryPolicy;
use ipguard_sim::{EventClaims, SendRetry, SimConfig, SimOrg};
use secrecy::ExposeSecret;

pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
pub const OM_TOKEN: &str = "om-path-token-0123456789";
pub const ISSUER: &str = "https://acme.my.salesforce.com";
pub const AUDIENCE: &str = "https://ipguard.example";

pub fn keys() -> &'static ipguard::keygen::KeyMaterial {
    static KEYS: OnceLock<ipguard::keygen::KeyMaterial> = OnceLock::new();
    KEYS.get_or_init(|| ipguard::keygen::generate("ipguard-service-test", 2).expect("test key"))
}

pub fn range(start: &str, end: &str) -> LoginIpRange {
    LoginIpRange::parse_existing(start, end, None).unwrap()
}

pub fn desired() -> Vec<LoginIpRange> {
    vec![range("203.0.113.10", "203.0.113.11")]
}

/// 18-character notification ids, all distinct.
pub fn notification_id(i: usize) -> String {
    format!("04l{i:015}")
}

pub fn fast_timing() -> ControllerTiming {
    ControllerTiming {
        debounce: Duration::from_millis(200),
        resync_interval: Duration::from_secs(3600),
        lease_ttl: Duration::from_millis(1500),
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        locked_out_backoff: Duration::from_secs(2),
    }
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_attempts: 4,
    }
}

/// A simulated org and the variables an operator would set to guard it.
pub struct Org {
    pub sim: SimOrg,
    pub vars: HashMap<&'static str, String>,
    _dir: tempfile::TempDir,
}

impl Org {
    pub async fn start(extra: &[(&'static str, &str)]) -> Self {
        Self::start_with(SimConfig::new(keys().certificate_pem.clone()), extra).await
    }

    /// [`Org::start`] for an org whose integration user is `username`.
    pub async fn start_as(username: &str, extra: &[(&'static str, &str)]) -> Self {
        let mut sim_config = SimConfig::new(keys().certificate_pem.clone());
        sim_config.username = username.to_owned();
        Self::start_with(sim_config, extra).await
    }

    pub async fn start_with(sim_config: SimConfig, extra: &[(&'static str, &str)]) -> Self {
        let profiles: Vec<String> = sim_config.profiles.iter().map(|(n, _)| n.clone()).collect();
        let mut vars: HashMap<&'static str, String> = HashMap::from([
            ("SALESFORCE_CLIENT_ID", sim_config.client_id.clone()),
            ("SALESFORCE_USERNAME", sim_config.username.clone()),
            ("HEROKU_SPACE", sim_config.heroku.space.clone()),
            ("HEROKU_API_TOKEN", sim_config.heroku.api_token.clone()),
            ("IPGUARD_PROFILES", profiles.join(",")),
            ("IPGUARD_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("EVENTS_JWT_ISSUER", ISSUER.to_owned()),
            ("EVENTS_JWT_AUDIENCE", AUDIENCE.to_owned()),
            ("IPGUARD_DEBOUNCE", "200ms".to_owned()),
            ("IPGUARD_DEPLOY_TIMEOUT", "20s".to_owned()),
            ("PORT", "0".to_owned()),
        ]);
        let sim = SimOrg::start(sim_config, 0).await.expect("sim starts");
        let dir = tempfile::tempdir().unwrap();
        vars.insert("SALESFORCE_LOGIN_URL", sim.base_url());
        vars.insert("HEROKU_API_URL", sim.base_url());
        vars.insert("SALESFORCE_ORG_ID", sim.org_id());
        vars.insert("EVENTS_JWT_CERTS", sim.event_signing_certificate());
        vars.insert(
            "SALESFORCE_PRIVATE_KEY",
            keys().private_key_pem.expose_secret().to_owned(),
        );
        vars.insert(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("ipguard.db").display()),
        );
        for (k, v) in extra {
            vars.insert(k, (*v).to_owned());
        }
        Self {
            sim,
            vars,
            _dir: dir,
        }
    }

    pub fn config(&self) -> Config {
        Config::from_lookup(|k| self.vars.get(k).cloned(), Needs::serve()).expect("config")
    }

    pub async fn serve(&self) -> App {
        self.serve_with(fast_timing()).await
    }

    /// [`Org::serve`] with the controller on `timing`.
    pub async fn serve_with(&self, timing: ControllerTiming) -> App {
        let overrides = Overrides {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            timing: Some(timing),
            retry: Some(fast_retry()),
        };
        let service = Application::build_with(&self.config(), overrides)
            .await
            .expect("service starts");
        App {
            base: format!("http://127.0.0.1:{}", service.port),
            service,
        }
    }

    /// An admin opens `profile` to every IPv4 address, and the org's flow sends an outbound
    /// message about it to `app`.
    pub async fn loosen_and_notify(
        &self,
        app: &App,
        profile: &str,
        notification_id: &str,
    ) -> ipguard_sim::SendReport {
        self.sim
            .set_login_ip_ranges(profile, vec![range("0.0.0.0", "255.255.255.255")]);
        self.sim
            .send_outbound_message(
                &app.url("/salesforce/outbound-messages"),
                &[notification_id.to_string()],
                SendRetry::default(),
            )
            .await
    }

    pub fn claims(&self) -> EventClaims {
        EventClaims {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            subject: "integration@ipguard.example".into(),
            lifetime: Duration::from_secs(120),
            with_jti: true,
            clock_skew_secs: 0,
        }
    }
}

pub struct App {
    pub base: String,
    pub service: Application,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /status` as a script reads it (admin bearer, JSON).
    pub async fn status_json(&self) -> serde_json::Value {
        self.admin_json("/status").await
    }

    /// An operator endpoint's JSON, with the admin bearer.
    /// `POST /reconcile?wait=true` as the operator; panics unless the run was answered (200).
    pub async fn reconcile_and_wait(&self) -> serde_json::Value {
        let answer = http()
            .post(self.url("/reconcile?wait=true"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        answer.json().await.unwrap()
    }

    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.admin_text(path, "application/json").await)
            .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
    }

    /// An operator endpoint's body as text (`/metrics`, or the page with `text/html`).
    pub async fn admin_text(&self, path: &str, accept: &str) -> String {
        http()
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Accept", accept)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn runs(&self) -> Vec<ipguard::store::RunRecord> {
        self.service.store.recent_runs(100).await.unwrap()
    }

    /// Waits until `done` holds for the run history, or panics after `timeout`.
    pub async fn wait_for_runs(
        &self,
        timeout: Duration,
        done: impl Fn(&[ipguard::store::RunRecord]) -> bool,
    ) -> Vec<ipguard::store::RunRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let runs = self.runs().await;
            if done(&runs) {
                return runs;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("runs never reached the expected state: {runs:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until `check` holds, looking every 20 ms; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn http() -> reqwest::Client {
    ipguard::app::parts::install_crypto_provider();
    reqwest::Client::new()
}

fn finished(runs: &[ipguard::store::RunRecord]) -> usize {
    runs.iter().filter(|r| r.outcome.is_some()).count()
}

#[tokio::test]
async fn outbound_message_after_an_admin_edit_is_remediated_and_verified() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    // the start-up run brings the org in sync
    app.wait_for_runs(Duration::from_secs(10), |r| finished(r) >= 1)
        .await;
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    // an admin loosens a profile; the org's flow sends an outbound message
    let report = org
        .loosen_and_notify(&app, "Admin", "04l1I000000fztEQAQ")
        .await;
    assert!(report.delivered && report.attempts == 1, "{report:?}");
    let runs = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.iter().any(|run| {
                run.trigger
                    .contains(ipguard::trigger::Trigger::OutboundMessage)
                    && run.outcome.is_some()
            })
        })
        .await;
    let run = runs
        .iter()
        .find(|r| {
            r.trigger
                .contains(ipguard::trigger::Trigger::OutboundMessage)
        })
        .unwrap();
    assert_eq!(
        run.outcome,
        Some(ipguard::outcome::Outcome::Remediated),
        "{run:#?}"
    );
    assert!(run.deploy_id.is_some());
    // the run record says who loosened the profile — never ipguard itself
    let plan = run.plan.as_ref().unwrap();
    let blamed = &plan.attribution.as_ref().unwrap().attributions;
    assert_eq!(blamed.len(), 1, "{blamed:#?}");
    assert_eq!(blamed[0].changed_by, ipguard_sim::ADMIN_USERNAME);
    assert_eq!(blamed[0].profile.as_str(), "Admin");
    // merge policy: the broad range stays, the space's range is back
    assert!(
        org.sim
            .login_ip_ranges("Admin")
            .unwrap()
            .contains(&desired()[0])
    );
    app.service.stop().await;
}

#[tokio::test]
async fn signed_platform_event_is_remediated() {
    let org = Org::start(&[("IPGUARD_POLICY", "exact")]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(10), |r| finished(r) >= 1)
        .await;
    org.sim.set_login_ip_ranges(
        "Custom%3A Support",
        vec![range("0.0.0.0", "255.255.255.255")],
    );
    let report = org
        .sim
        .send_platform_events(
            &app.url("/salesforce/events"),
            &["Custom%3A Support".to_string()],
            &org.claims(),
            SendRetry::default(),
        )
        .await;
    assert!(report.delivered, "{report:?}");
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter().any(|run| {
            run.trigger
                .contains(ipguard::trigger::Trigger::PlatformEvent)
                && run.outcome.is_some()
        })
    })
    .await;
    assert_eq!(
        org.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        desired()
    );
    app.service.stop().await;
}

#[tokio::test]
async fn duplicate_delivery_is_recorded_once_and_acked_twice() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(10), |r| finished(r) >= 1)
        .await;
    let url = app.url("/salesforce/outbound-messages");
    let ids = ["04l1I000000fztEQAQ".to_string()];
    let first = org
        .sim
        .send_outbound_message(&url, &ids, SendRetry::default())
        .await;
    let second = org
        .sim
        .send_outbound_message(&url, &ids, SendRetry::default())
        .await;
    assert!(first.delivered && second.delivered);
    let text = app.service.metrics.render();
    assert!(
        text.contains(
            "ipguard_notifications_total{source=\"outbound_message\",outcome=\"accepted\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ipguard_notifications_total{source=\"outbound_message\",outcome=\"duplicate\"} 1"
        ),
        "{text}"
    );
    app.service.stop().await;
}

/// A Slack-compatible webhook receiver that keeps what it is sent.
pub async fn alert_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use actix_web::{App, HttpServer, web};
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = web::Data::new(received.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(sink.clone()).route(
            "/hook",
            web::post().to(
                |body: String, sink: web::Data<std::sync::Arc<std::sync::Mutex<Vec<String>>>>| async move {
                    sink.lock().unwrap().push(body);
                    "ok"
                },
            ),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), received)
}

#[tokio::test]
async fn alerts_tell_of_remediation_and_lock_out_once_per_incident() {
    let (hook, received) = alert_receiver().await;
    let org = Org::start(&[("IPGUARD_ALERT_WEBHOOK_URL", hook.as_str())]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(10), |r| finished(r) >= 1)
        .await;
    // lock the integration user out, then send two hints: two failing runs, one alert
    org.sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
    let url = app.url("/salesforce/outbound-messages");
    for id in ["04l000000000010AAA", "04l000000000011AAA"] {
        // the cached session dies, so ipguard must log in again — and is refused
        org.sim.set_faults(ipguard_sim::Faults {
            next_failures: vec![ipguard_sim::FailureKind::InvalidSession],
            ..Default::default()
        });
        org.sim
            .send_outbound_message(&url, &[id.to_string()], SendRetry::default())
            .await;
        app.wait_for_runs(Duration::from_secs(10), |r| {
            r.iter()
                .filter(|run| run.outcome == Some(ipguard::outcome::Outcome::LockedOut))
                .count()
                >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let locked_runs = app
        .wait_for_runs(Duration::from_secs(10), |r| {
            r.iter()
                .filter(|run| run.outcome == Some(ipguard::outcome::Outcome::LockedOut))
                .count()
                >= 2
        })
        .await;
    assert!(locked_runs.len() >= 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts = received.lock().unwrap().clone();
    let text: Vec<String> = alerts
        .iter()
        .map(|a| {
            serde_json::from_str::<serde_json::Value>(a).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(text[0].contains("remediated"), "{text:#?}");
    let lockouts = text
        .iter()
        .filter(|t| t.to_lowercase().contains("locked out"))
        .count();
    assert_eq!(lockouts, 1, "one alert per incident: {text:#?}");
    for t in &text {
        assert!(
            !t.contains(ADMIN_TOKEN) && !t.contains("BEGIN"),
            "secret in an alert"
        );
    }
    app.service.stop().await;
}
