//! Many orgs from one deployment (docs/contract.md §8): a production org and a sandbox guarded
//! by one `ipguard serve`, each message and callout reaching only its own org.

use std::time::Duration;

use ipguard::store::RunRecord;
use ipguard::trigger::Trigger;
use ipguard_sim::{SendRetry, SimConfig};
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::{ipguard, text};
use crate::service::{
    App, Org, alert_receiver, desired, fast_timing, http, keys, range, wait_until,
};

/// The sandbox's id: a different org from the simulated production org.
const UAT_ORG_ID: &str = "00D5g000004SNDBEA4";

/// `prod` (the base org, whose plain variables are every org's defaults) and `uat` (its own
/// login URL, org id and policy; the same External Client App, integration user and key).
struct TwoOrgs {
    prod: Org,
    uat: Org,
}

impl TwoOrgs {
    async fn start() -> Self {
        let mut prod = Org::start(&[]).await;
        let mut uat_config = SimConfig::new(keys().certificate_pem.clone());
        uat_config.org_id = UAT_ORG_ID.to_owned();
        let uat = Org::start_with(uat_config, &[]).await;
        let both_certs = format!(
            "{}\n{}",
            prod.sim.event_signing_certificate(),
            uat.sim.event_signing_certificate()
        );
        prod.vars.remove("SALESFORCE_ORG_ID");
        prod.vars.insert("IPGUARD_ORGS", "prod,uat".into());
        prod.vars
            .insert("IPGUARD_ORG_PROD_SALESFORCE_ORG_ID", prod.sim.org_id());
        prod.vars
            .insert("IPGUARD_ORG_UAT_SALESFORCE_ORG_ID", UAT_ORG_ID.into());
        prod.vars
            .insert("IPGUARD_ORG_UAT_SALESFORCE_LOGIN_URL", uat.sim.base_url());
        // The sandbox holds exactly the space's IPs; production keeps the default `merge`.
        prod.vars
            .insert("IPGUARD_ORG_UAT_IPGUARD_POLICY", "exact".into());
        prod.vars.insert("EVENTS_JWT_CERTS", both_certs);
        Self { prod, uat }
    }

    async fn serve(&self) -> App {
        self.prod.serve().await
    }
}

fn finished_for<'r>(runs: &'r [RunRecord], org_id: &str) -> impl Iterator<Item = &'r RunRecord> {
    runs.iter()
        .filter(move |r| r.org_id == org_id && r.outcome.is_some())
}

/// Both orgs' start-up runs, each against its own org.
async fn started(orgs: &TwoOrgs, app: &App) -> Vec<RunRecord> {
    let prod_id = orgs.prod.sim.org_id();
    app.wait_for_runs(Duration::from_secs(15), |runs| {
        finished_for(runs, &prod_id).count() >= 1 && finished_for(runs, UAT_ORG_ID).count() >= 1
    })
    .await
}

#[tokio::test]
async fn each_org_is_reconciled_against_itself_from_one_service() {
    let orgs = TwoOrgs::start().await;
    let app = orgs.serve().await;
    started(&orgs, &app).await;
    for org in [&orgs.prod, &orgs.uat] {
        assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
        assert_eq!(org.sim.count("deploy"), 1, "one deploy per org");
    }
    app.service.stop().await;
}

#[tokio::test]
async fn an_outbound_message_runs_only_the_org_whose_id_it_carries() {
    let orgs = TwoOrgs::start().await;
    let app = orgs.serve().await;
    started(&orgs, &app).await;
    let prod_deploys = orgs.prod.sim.count("deploy");
    orgs.uat.sim.set_login_ip_ranges(
        "Custom%3A Support",
        vec![range("0.0.0.0", "255.255.255.255")],
    );
    let report = orgs
        .uat
        .sim
        .send_outbound_message(
            &app.url("/salesforce/outbound-messages"),
            &["04l000000000000001".to_owned()],
            SendRetry::default(),
        )
        .await;
    assert!(report.delivered, "{report:?}");
    let runs = app
        .wait_for_runs(Duration::from_secs(15), |runs| {
            finished_for(runs, UAT_ORG_ID).any(|r| r.trigger.contains(Trigger::OutboundMessage))
        })
        .await;
    assert_eq!(
        orgs.uat.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        desired()
    );
    let prod_id = orgs.prod.sim.org_id();
    assert!(
        !finished_for(&runs, &prod_id).any(|r| r.trigger.contains(Trigger::OutboundMessage)),
        "the sandbox's message started a production run: {runs:#?}"
    );
    assert_eq!(orgs.prod.sim.count("deploy"), prod_deploys);

    // an org nobody configured: refused, and no run anywhere
    let stranger = orgs
        .uat
        .sim
        .send_outbound_message_as(
            "00D000000000999AAA",
            &app.url("/salesforce/outbound-messages"),
            &["04l000000000000002".to_owned()],
            SendRetry {
                attempts: 1,
                ..SendRetry::default()
            },
        )
        .await;
    assert!(!stranger.delivered);
    assert_eq!(stranger.last_status, Some(403), "{stranger:?}");
    app.service.stop().await;
}

#[tokio::test]
async fn an_event_callout_runs_only_the_org_whose_path_it_took() {
    let orgs = TwoOrgs::start().await;
    let app = orgs.serve().await;
    started(&orgs, &app).await;
    // Signed by production's key (both are trusted) and naming a profile both orgs have: the
    // path alone says which org looks.
    orgs.uat.sim.set_login_ip_ranges(
        "Custom%3A Support",
        vec![range("0.0.0.0", "255.255.255.255")],
    );
    let report = orgs
        .prod
        .sim
        .send_platform_events(
            &app.url("/salesforce/events/prod"),
            &["Custom%3A Support".to_owned()],
            &orgs.prod.claims(),
            SendRetry::default(),
        )
        .await;
    assert!(report.delivered, "{report:?}");
    let prod_id = orgs.prod.sim.org_id();
    let runs = app
        .wait_for_runs(Duration::from_secs(15), |runs| {
            finished_for(runs, &prod_id).any(|r| r.trigger.contains(Trigger::PlatformEvent))
        })
        .await;
    assert!(
        !finished_for(&runs, UAT_ORG_ID).any(|r| r.trigger.contains(Trigger::PlatformEvent)),
        "production's callout started a sandbox run: {runs:#?}"
    );
    assert_ne!(
        orgs.uat.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        desired(),
        "the sandbox's drift waits for its own hint"
    );

    // the sandbox's own path remediates it
    let report = orgs
        .uat
        .sim
        .send_platform_events(
            &app.url("/salesforce/events/uat"),
            &["Custom%3A Support".to_owned()],
            &orgs.uat.claims(),
            SendRetry::default(),
        )
        .await;
    assert!(report.delivered, "{report:?}");
    app.wait_for_runs(Duration::from_secs(15), |runs| {
        finished_for(runs, UAT_ORG_ID).any(|r| r.trigger.contains(Trigger::PlatformEvent))
    })
    .await;
    assert_eq!(
        orgs.uat.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        desired()
    );

    // a callout signed by a key no org uses, on the sandbox's path: refused, nothing runs
    let stranger = ipguard::keygen::generate("not-an-org", 1).unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(ipguard_sim::EVENT_SIGNING_CERT_NAME.to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
        },
        &serde_json::json!({
            "iss": crate::service::ISSUER, "aud": crate::service::AUDIENCE,
            "sub": "integration@ipguard.example",
            "iat": chrono::Utc::now().timestamp(), "exp": chrono::Utc::now().timestamp() + 120,
            "jti": "forged-cross-org-1",
        }),
        &jsonwebtoken::EncodingKey::from_rsa_pem(
            secrecy::ExposeSecret::expose_secret(&stranger.private_key_pem).as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    let uat_runs = finished_for(&app.runs().await, UAT_ORG_ID).count();
    let answer = http()
        .post(app.url("/salesforce/events/uat"))
        .bearer_auth(forged)
        .header("Content-Type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        finished_for(&app.runs().await, UAT_ORG_ID).count(),
        uat_runs
    );

    // with several orgs the plain path names none; an unknown org is not found
    for path in ["/salesforce/events", "/salesforce/events/dev9"] {
        let token = orgs.prod.sim.event_token(&orgs.prod.claims());
        let answer = http()
            .post(app.url(path))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    app.service.stop().await;
}

#[tokio::test]
async fn status_and_metrics_show_every_org() {
    let orgs = TwoOrgs::start().await;
    let app = orgs.serve().await;
    started(&orgs, &app).await;
    let all: Value = app.status_json().await;
    let names: Vec<&str> = all["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .map(|o| o["org"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["prod", "uat"]);
    let uat = app.admin_json("/status?org=uat").await;
    assert_eq!(uat["org"], "uat");
    assert!(
        uat["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["org_id"] == UAT_ORG_ID),
        "{uat:#}"
    );
    let metrics = app.admin_text("/metrics", "text/plain").await;
    for org in ["prod", "uat"] {
        let needle = format!("ipguard_profile_in_sync{{org=\"{org}\",profile=\"Admin\"}} 1");
        assert!(metrics.contains(&needle), "{needle} missing:\n{metrics}");
    }
    app.service.stop().await;
}

#[tokio::test]
async fn plan_and_apply_need_org_when_several_are_configured() {
    let orgs = TwoOrgs::start().await;
    let vars: Vec<(&str, String)> = orgs
        .prod
        .vars
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let run = |args: &'static [&'static str]| {
        let vars = vars.clone();
        tokio::task::spawn_blocking(move || ipguard(args, &vars))
    };
    let ambiguous = run(&["plan"]).await.unwrap();
    assert_eq!(ambiguous.status.code(), Some(1), "{}", text(&ambiguous));
    assert!(text(&ambiguous).contains("--org"), "{}", text(&ambiguous));
    let unknown = run(&["apply", "--org", "dev9"]).await.unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("prod, uat"), "{}", text(&unknown));
    let plan = run(&["plan", "--org", "uat", "--json"]).await.unwrap();
    assert_eq!(plan.status.code(), Some(2), "drift: {}", text(&plan));
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(doc["org"], "uat");
    assert_eq!(
        orgs.prod.sim.count("readMetadata"),
        0,
        "only the sandbox was read"
    );
    let apply = run(&["apply", "--org", "uat"]).await.unwrap();
    assert_eq!(apply.status.code(), Some(0), "{}", text(&apply));
    assert_eq!(orgs.uat.sim.login_ip_ranges("Admin").unwrap(), desired());
    assert_ne!(orgs.prod.sim.login_ip_ranges("Admin").unwrap(), desired());
    let history = run(&["history", "--json"]).await.unwrap();
    let rows: Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(rows[0]["org"], "uat", "{rows:#}");
}

/// An 18-character org id: `00D` and `n`, with the case-checksum suffix Salesforce appends.
fn org_id(n: usize) -> String {
    let base = format!("00D5g0000{n:02}ORGS");
    let base = &base[..15];
    const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let suffix: String = base
        .as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0, |bits, (i, _)| bits | (1 << i));
            char::from(SUFFIX[bits])
        })
        .collect();
    format!("{base}{suffix}")
}

/// `count` orgs `o1`…: the first is the base org (its plain variables the defaults), each
/// other its own simulated org with its own id and login URL.
async fn many_orgs(count: usize) -> (Org, Vec<Org>) {
    let mut base = Org::start(&[]).await;
    let mut others = Vec::new();
    let mut keys_listed = vec!["o1".to_owned()];
    base.vars.remove("SALESFORCE_ORG_ID");
    base.vars
        .insert("IPGUARD_ORG_O1_SALESFORCE_ORG_ID", base.sim.org_id());
    for n in 2..=count {
        let mut config = SimConfig::new(keys().certificate_pem.clone());
        config.org_id = org_id(n);
        let other = Org::start_with(config, &[]).await;
        let var = |name: &str| -> &'static str { format!("IPGUARD_ORG_O{n}_{name}").leak() };
        base.vars
            .insert(var("SALESFORCE_ORG_ID"), other.sim.org_id());
        base.vars
            .insert(var("SALESFORCE_LOGIN_URL"), other.sim.base_url());
        keys_listed.push(format!("o{n}"));
        others.push(other);
    }
    base.vars.insert("IPGUARD_ORGS", keys_listed.join(","));
    (base, others)
}

fn leading(app: &App) -> usize {
    app.service
        .statuses
        .iter()
        .filter(|s| s.snapshot().leader)
        .count()
}

/// Two web dynos and six orgs: both reconcile, three orgs each; when one dies, the other has
/// all six within the lease TTL.
#[tokio::test]
async fn six_orgs_spread_over_two_instances_and_move_when_one_dies() {
    let Some(schema) = ipguard::store::testing::PgSchema::create().await else {
        return;
    };
    let (mut base, others) = many_orgs(6).await;
    base.vars.insert("DATABASE_URL", schema.url());
    let a = base.serve().await;
    wait_until(
        "the first instance takes every org",
        Duration::from_secs(15),
        async || leading(&a) == 6,
    )
    .await;
    let ttl = fast_timing().lease_ttl;
    let b = base.serve().await;
    let arrived = std::time::Instant::now();
    wait_until(
        "the orgs spread over both",
        Duration::from_secs(15),
        async || leading(&a) == 3 && leading(&b) == 3,
    )
    .await;
    let spread = arrived.elapsed();
    assert!(
        spread <= ttl * 3,
        "the orgs spread {spread:?} after the second instance started; the lease TTL is {ttl:?}"
    );
    // every org reconciled, by one instance or the other (the store is shared); an org that
    // moved mid-run may still be finishing its run on the other instance
    let ids: Vec<String> = std::iter::once(&base)
        .chain(&others)
        .map(|org| org.sim.org_id())
        .collect();
    a.wait_for_runs(Duration::from_secs(15), |runs| {
        ids.iter()
            .all(|id| runs.iter().any(|r| &r.org_id == id && r.outcome.is_some()))
    })
    .await;
    for org in std::iter::once(&base).chain(&others) {
        assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    }

    // one dies without releasing anything: its orgs move within the lease TTL
    b.service.crash().await;
    let died = std::time::Instant::now();
    wait_until("the survivor takes every org", ttl * 4, async || {
        leading(&a) == 6
    })
    .await;
    let moved = died.elapsed();
    assert!(
        moved <= ttl + Duration::from_millis(700),
        "orgs moved {moved:?} after the crash; the lease TTL is {ttl:?}"
    );
    a.service.stop().await;
}

/// One org locked out, another slow: neither holds up the third's remediation, and the
/// lock-out stays that org's alone.
#[tokio::test]
async fn one_orgs_lock_out_or_slow_deploy_never_delays_another() {
    let (mut base, others) = many_orgs(3).await;
    let (hook, alerts) = alert_receiver().await;
    base.vars.insert("IPGUARD_ALERT_WEBHOOK_URL", hook);
    // o2: the integration user's own profile no longer admits the space (locked out)
    others[0].sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
    let app = base.serve().await;
    let ids: Vec<String> = [&base, &others[0], &others[1]]
        .iter()
        .map(|o| o.sim.org_id())
        .collect();
    app.wait_for_runs(Duration::from_secs(15), |runs| {
        ids.iter().all(|id| finished_for(runs, id).count() >= 1)
    })
    .await;
    let locked = app.runs().await;
    assert!(
        finished_for(&locked, &ids[1])
            .all(|r| r.outcome == Some(ipguard::outcome::Outcome::LockedOut)),
        "{locked:#?}"
    );
    // o3: every Salesforce call now takes four seconds, and it has a run going
    others[1].sim.set_faults(ipguard_sim::Faults {
        latency: Duration::from_secs(4),
        ..Default::default()
    });
    others[1]
        .sim
        .send_outbound_message(
            &app.url("/salesforce/outbound-messages"),
            &["04l000000000000102".to_owned()],
            SendRetry::default(),
        )
        .await;
    // now production drifts: it is remediated at once, beside the other two
    base.sim.set_login_ip_ranges(
        "Custom%3A Support",
        vec![range("0.0.0.0", "255.255.255.255")],
    );
    base.sim
        .set_login_ip_ranges("Admin", vec![range("198.51.100.1", "198.51.100.1")]);
    let started = std::time::Instant::now();
    base.sim
        .send_outbound_message(
            &app.url("/salesforce/outbound-messages"),
            &["04l000000000000109".to_owned()],
            SendRetry::default(),
        )
        .await;
    let runs = app
        .wait_for_runs(Duration::from_secs(15), |runs| {
            finished_for(runs, &ids[0]).any(|r| r.trigger.contains(Trigger::OutboundMessage))
        })
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "production waited {took:?} (the slow org's calls take 4 s each)"
    );
    let prod_run = finished_for(&runs, &ids[0])
        .find(|r| r.trigger.contains(Trigger::OutboundMessage))
        .unwrap();
    assert_eq!(
        prod_run.outcome,
        Some(ipguard::outcome::Outcome::Remediated)
    );
    let status = app.status_json().await;
    let locked_out: Vec<bool> = status["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["locked_out"].as_bool() == Some(true))
        .collect();
    assert_eq!(locked_out, [false, true, false], "{status:#}");
    // the alert names the org it is about: its key and its id
    let said = alerts.lock().unwrap().join("\n");
    assert!(
        said.contains(&format!("LOCKED OUT of org o2 ({})", ids[1])),
        "{said}"
    );
    assert_eq!(said.matches("LOCKED OUT").count(), 1, "{said}");
    others[1].sim.set_faults(ipguard_sim::Faults::default());
    app.service.crash().await;
}

/// `ipguard demo --orgs 2`: production and a sandbox from one service, a sandbox message
/// reaching the sandbox alone, both ending in sync.
#[test]
fn the_demo_guards_production_and_a_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ipguard(
        &["demo", "--orgs", "2"],
        &[("TMPDIR", tmp.path().display().to_string())],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for line in [
        "IPGUARD_ORGS=prod,uat",
        "routed by the OrganizationId it carries to `uat` alone",
        "Production was not touched: 0 deploy(s)",
        "uat: 4 of 4 profiles in sync",
        "every org ends in sync",
    ] {
        assert!(said.contains(line), "missing {line:?} in:\n{said}");
    }
}

/// Every org at a glance and one org's own page, in headless Chromium as a person uses them
/// (tests/browser/orgs-page.mjs): rows in `IPGUARD_ORGS` order, captions and scoped headers,
/// the org's "Check … now" asking that org only and coming back to its page, no sideways
/// scrolling on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orgs_page_in_headless_chromium() {
    if !crate::status_page::browser_available() {
        return;
    }
    let orgs = TwoOrgs::start().await;
    let app = orgs.serve().await;
    started(&orgs, &app).await;
    let uat_runs = finished_for(&app.runs().await, UAT_ORG_ID).count();
    let prod_id = orgs.prod.sim.org_id();
    let prod_runs = finished_for(&app.runs().await, &prod_id).count();
    crate::status_page::run_browser_script(
        "orgs-page.mjs",
        &app.base,
        vec![("IPGUARD_ORG_KEYS", "prod,uat".to_owned())],
    )
    .await;
    let runs = app.runs().await;
    assert_eq!(
        finished_for(&runs, UAT_ORG_ID).count(),
        uat_runs + 1,
        "the button ran uat"
    );
    assert_eq!(
        finished_for(&runs, &prod_id).count(),
        prod_runs,
        "and not prod"
    );
    app.service.stop().await;
}
