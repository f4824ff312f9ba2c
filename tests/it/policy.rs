//! What ipguard asserts (issue 11; docs/contract.md §1 Policy and Owned ranges, §5 rules 1, 3, 10, 11):
//! owned ranges, narrowing under `merge`, the self-lock-out interlock and dry-run alerts —
//! end to end against the simulated org, through `ipguard apply` (store, lease, records) and
//! `ipguard serve`.

use std::time::Duration;

use ipguard::cli::{ApplyOptions, apply_with};
use ipguard::ranges::LoginIpRange;
use ipguard::reconcile::plan::Reason;
use ipguard::reconcile::run::{Outcome, RunReport};
use ipguard_sim::SimHeroku;

use crate::service::{Org, alert_receiver, desired, range};

const INTEGRATION: &str = "Custom%3A Integration";
const SUPPORT: &str = "Custom%3A Support";

fn described(start: &str, end: &str, description: &str) -> LoginIpRange {
    LoginIpRange::parse_existing(start, end, Some(description)).unwrap()
}

fn open_range() -> LoginIpRange {
    range("0.0.0.0", "255.255.255.255")
}

async fn apply(org: &Org) -> RunReport {
    apply_opts(org, ApplyOptions::default()).await
}

async fn apply_opts(org: &Org, options: ApplyOptions) -> RunReport {
    let config = org.config();
    apply_with(&config, &config.orgs[0], &[], options)
        .await
        .expect("apply runs")
        .report
}

fn keys(ranges: &[LoginIpRange]) -> Vec<(String, String)> {
    let mut keys: Vec<_> = ranges
        .iter()
        .map(|r| (r.start().to_string(), r.end().to_string()))
        .collect();
    keys.sort();
    keys
}

fn profile_reason(report: &RunReport, profile: &str, r: &LoginIpRange) -> Option<Reason> {
    report
        .plan
        .as_ref()?
        .profiles
        .iter()
        .find(|p| p.name.as_str() == profile)?
        .reason_for(r)
}

#[tokio::test]
async fn loosening_by_adding_under_merge_is_kept_without_keep_within_and_removed_with_it() {
    // unset: today's behaviour — a foreign range survives (and is flagged broad elsewhere)
    let org = Org::start(&[]).await;
    assert_eq!(apply(&org).await.outcome, Outcome::Remediated);
    let mut loosened = desired();
    loosened.push(open_range());
    org.sim.set_login_ip_ranges("Admin", loosened.clone());
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::InSync, "{report:#?}");
    assert_eq!(
        profile_reason(&report, "Admin", &open_range()),
        Some(Reason::Foreign)
    );
    assert_eq!(
        keys(&org.sim.login_ip_ranges("Admin").unwrap()),
        keys(&loosened)
    );
    org.sim.stop().await;

    // IPGUARD_KEEP_WITHIN: the open range lies in no allowed CIDR → drift, removed
    let org = Org::start(&[("IPGUARD_KEEP_WITHIN", "198.51.100.0/24,10.0.0.0/8")]).await;
    assert_eq!(apply(&org).await.outcome, Outcome::Remediated);
    org.sim.set_login_ip_ranges("Admin", loosened);
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(
        profile_reason(&report, "Admin", &open_range()),
        Some(Reason::OutsideKeepWithin)
    );
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    // the admin's own office range inside 198.51.100.0/24 was kept all along
    assert!(
        org.sim
            .login_ip_ranges(SUPPORT)
            .unwrap()
            .contains(&range("198.51.100.0", "198.51.100.255"))
    );
    org.sim.stop().await;
}

#[tokio::test]
async fn loosening_by_replacing_under_merge() {
    // unset: the space's IPs come back, the open range stays (foreign)
    let org = Org::start(&[]).await;
    assert_eq!(apply(&org).await.outcome, Outcome::Remediated);
    org.sim.set_login_ip_ranges("Admin", vec![open_range()]);
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(
        keys(&org.sim.login_ip_ranges("Admin").unwrap()),
        keys(&[open_range(), desired()[0].clone()])
    );
    org.sim.stop().await;

    // with IPGUARD_KEEP_WITHIN: the list is the space's again, nothing else
    let org = Org::start(&[("IPGUARD_KEEP_WITHIN", "10.0.0.0/8")]).await;
    assert_eq!(apply(&org).await.outcome, Outcome::Remediated);
    org.sim.set_login_ip_ranges("Admin", vec![open_range()]);
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), desired());
    org.sim.stop().await;
}

#[tokio::test]
async fn a_nat_change_moves_every_guarded_profile_in_one_deploy_leaving_no_stale_range() {
    // the service holds its session across the move (a fresh process would be locked out:
    // its new egress is not on the integration profile yet)
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter()
            .any(|run| run.outcome == Some(ipguard::outcome::Outcome::Remediated))
    })
    .await;
    let deploys_before = org.sim.deploys().len();
    // the space is re-created elsewhere: new NAT IPs, and its egress moves with them
    org.sim.change_nat(&["192.0.2.20", "192.0.2.21"]);
    let answer = crate::service::http()
        .post(app.url("/reconcile?wait=true"))
        .bearer_auth(crate::service::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body["outcome"],
        "remediated",
        "{body:#?} {:#?}",
        app.runs().await
    );
    assert_eq!(org.sim.deploys().len(), deploys_before + 1, "one deploy");
    let new = range("192.0.2.20", "192.0.2.21");
    for profile in ["Admin", "Standard", INTEGRATION] {
        assert_eq!(
            keys(&org.sim.login_ip_ranges(profile).unwrap()),
            keys(std::slice::from_ref(&new)),
            "{profile}"
        );
    }
    // the admin's own range stays; the old space range is gone
    assert_eq!(
        keys(&org.sim.login_ip_ranges(SUPPORT).unwrap()),
        keys(&[range("198.51.100.0", "198.51.100.255"), new.clone()])
    );
    let runs = app.runs().await;
    let plan = runs[0].plan.as_ref().unwrap();
    let why: Vec<Reason> = plan
        .profiles
        .iter()
        .flat_map(|p| &p.why)
        .map(|w| w.reason)
        .collect();
    assert!(why.contains(&Reason::OwnedNoLongerDesired), "{why:?}");
    app.service.stop().await;
    // and a fresh process gets in from the space's new egress
    assert_eq!(apply(&org).await.outcome, Outcome::InSync);
    org.sim.stop().await;
}

#[tokio::test]
async fn a_forged_ipguard_description_is_not_ipguard_s_once_the_store_has_history() {
    let org = Org::start(&[]).await;
    assert_eq!(apply(&org).await.outcome, Outcome::Remediated);
    // an attacker (or a careless admin) labels a range as if ipguard wrote it
    let forged = described("100.64.0.1", "100.64.0.1", "ipguard: space acme-space");
    let mut ranges = desired();
    ranges.push(forged.clone());
    org.sim.set_login_ip_ranges("Admin", ranges.clone());
    let report = apply(&org).await;
    // the store recorded what ipguard wrote there: the text does not make it ipguard's
    assert_eq!(report.outcome, Outcome::InSync, "{report:#?}");
    assert_eq!(
        profile_reason(&report, "Admin", &forged),
        Some(Reason::Foreign)
    );
    assert_eq!(
        keys(&org.sim.login_ip_ranges("Admin").unwrap()),
        keys(&ranges)
    );
    org.sim.stop().await;
}

#[tokio::test]
async fn a_fresh_store_takes_ipguard_descriptions_as_its_own() {
    // a range from an earlier install, described `ipguard: …`, no longer in the sources
    let org = Org::start(&[]).await;
    let stale = described("203.0.113.99", "203.0.113.99", "ipguard: space old-space");
    let mut ranges = desired();
    ranges.push(stale.clone());
    org.sim.set_login_ip_ranges("Standard", ranges);
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(
        profile_reason(&report, "Standard", &stale),
        Some(Reason::OwnedNoLongerDesired)
    );
    assert_eq!(org.sim.login_ip_ranges("Standard").unwrap(), desired());
    org.sim.stop().await;
}

#[tokio::test]
async fn exact_profiles_force_exact_on_the_integration_profile_only() {
    let org = Org::start(&[("IPGUARD_EXACT_PROFILES", INTEGRATION)]).await;
    org.sim.set_login_ip_ranges(
        INTEGRATION,
        vec![
            described("203.0.113.10", "203.0.113.11", "ipguard: space acme-space"),
            described("192.0.2.77", "192.0.2.77", "someone's"),
        ],
    );
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(org.sim.login_ip_ranges(INTEGRATION).unwrap(), desired());
    // the default (merge) still keeps the office range elsewhere
    assert!(
        org.sim
            .login_ip_ranges(SUPPORT)
            .unwrap()
            .contains(&range("198.51.100.0", "198.51.100.255"))
    );
    let plan = report.plan.unwrap();
    let integration = plan
        .profiles
        .iter()
        .find(|p| p.name.as_str() == INTEGRATION)
        .unwrap();
    assert_eq!(integration.policy_from.variable(), "IPGUARD_EXACT_PROFILES");
    org.sim.stop().await;
}

/// ipguard runs on a laptop (198.51.100.7) that the integration profile admits, and `exact`
/// would narrow that profile to the space.
async fn laptop_org() -> Org {
    let org = Org::start(&[("IPGUARD_POLICY", "exact")]).await;
    org.sim.set_caller_ip("198.51.100.7".parse().unwrap());
    org.sim.set_login_ip_ranges(
        INTEGRATION,
        vec![
            desired()[0].clone(),
            described("198.51.100.7", "198.51.100.7", "operator laptop"),
        ],
    );
    org
}

#[tokio::test]
async fn the_interlock_refuses_a_deploy_that_would_lock_ipguard_out() {
    let org = laptop_org().await;
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    let error = report.error.unwrap();
    assert!(error.contains("self-lock-out interlock"), "{error}");
    assert!(error.contains("198.51.100.7"), "{error}");
    assert_eq!(org.sim.deploys().len(), 0, "nothing deployed");
    // it read the integration user's LoginHistory to know
    assert!(
        org.sim
            .login_history()
            .iter()
            .any(|(ip, status)| ip.to_string() == "198.51.100.7" && status == "Success")
    );
    assert_eq!(ipguard::cli::exit_code(Outcome::Failed), 1);

    // the one deliberate override
    let report = apply_opts(
        &org,
        ApplyOptions {
            allow_self_lockout: true,
            ..ApplyOptions::default()
        },
    )
    .await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(org.sim.login_ip_ranges(INTEGRATION).unwrap(), desired());
    org.sim.stop().await;
}

#[tokio::test]
async fn without_login_history_the_interlock_holds_the_nat_ips_only() {
    let org = laptop_org().await;
    org.sim.set_login_history_readable(false);
    let report = apply(&org).await;
    // the space's NAT IPs stay admitted, so the deploy goes (the laptop is not known)
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    org.sim.stop().await;
}

#[tokio::test]
async fn an_enabled_nat_without_ips_fails_the_run() {
    let org = Org::start(&[]).await;
    org.sim.set_heroku(SimHeroku {
        space: "acme-space".into(),
        api_token: ipguard_sim::DEFAULT_HEROKU_TOKEN.into(),
        state: "enabled".into(),
        sources: Vec::new(),
    });
    let report = apply(&org).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .contains("lists no outbound IPs"),
        "{report:#?}"
    );
    assert_eq!(org.sim.deploys().len(), 0);
    org.sim.stop().await;
}

#[tokio::test]
async fn dry_run_drift_alerts_once_per_incident_with_the_plan() {
    let (hook, received) = alert_receiver().await;
    let org = Org::start(&[
        ("IPGUARD_ALERT_WEBHOOK_URL", hook.as_str()),
        ("IPGUARD_MODE", "dry-run"),
    ])
    .await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter()
            .any(|run| run.outcome == Some(ipguard::outcome::Outcome::Planned))
    })
    .await;
    // a second hint: still drift, still planned — and silent
    let http = crate::service::http();
    let answer = http
        .post(app.url("/reconcile?wait=true"))
        .bearer_auth(crate::service::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    app.wait_for_runs(Duration::from_secs(10), |r| {
        r.iter()
            .filter(|run| run.outcome == Some(ipguard::outcome::Outcome::Planned))
            .count()
            >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|a| {
            serde_json::from_str::<serde_json::Value>(a).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(texts[0].contains("would remediate"), "{texts:#?}");
    // the same plan text `ipguard plan` prints, policy per profile included
    assert!(texts[0].contains("profile Admin: drift (policy merge (IPGUARD_POLICY))"));
    assert!(texts[0].contains("+ 203.0.113.10 – 203.0.113.11"));
    assert_eq!(org.sim.login_ip_ranges("Admin").unwrap(), Vec::new());
    app.service.stop().await;
}

/// `/status` (JSON and the page) says per profile which policy applied, from which variable,
/// and why a range that is not the space's stays.
#[tokio::test]
async fn status_says_each_profiles_policy_and_why_a_foreign_range_stays() {
    let org = Org::start(&[
        ("IPGUARD_KEEP_WITHIN", "198.51.100.0/24"),
        ("IPGUARD_EXACT_PROFILES", INTEGRATION),
    ])
    .await;
    let app = org.serve().await;
    app.wait_for_runs(Duration::from_secs(20), |runs| {
        runs.iter()
            .any(|r| r.outcome == Some(ipguard::outcome::Outcome::Remediated))
    })
    .await;
    let client = crate::service::http();
    let status = app.status_json().await;
    let profile = |name: &str| {
        status["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {status:#}"))
            .clone()
    };
    let integration = profile(INTEGRATION);
    assert_eq!(integration["policy"], "exact", "{integration:#}");
    assert_eq!(integration["policy_from"], "IPGUARD_EXACT_PROFILES");
    let support = profile(SUPPORT);
    assert_eq!(support["policy"], "merge", "{support:#}");
    assert_eq!(support["policy_from"], "IPGUARD_POLICY");
    let office = support["why"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["start"] == "198.51.100.0")
        .unwrap_or_else(|| panic!("the office range in {support:#}"))
        .clone();
    assert_eq!(office["action"], "keep");
    assert_eq!(office["reason"], "inside_keep_within");

    let page = client
        .get(app.url("/status"))
        .bearer_auth(crate::service::ADMIN_TOKEN)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("policy exact (IPGUARD_EXACT_PROFILES)"),
        "{page}"
    );
    assert!(page.contains("policy merge (IPGUARD_POLICY)"), "{page}");
    assert!(
        page.contains(
            "keep 198.51.100.0 – 198.51.100.255: someone else&apos;s range inside IPGUARD_KEEP_WITHIN"
        ),
        "the kept office range and why: {page}"
    );
    app.service.stop().await;
}
