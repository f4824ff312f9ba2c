//! Guarded profiles from the app and the side doors (docs/contract.md §9), against the
//! simulated org through the public interfaces: a run (what `serve` and `apply` build) and
//! the service with its alerts.

use std::time::Duration;

use ipguard::reconcile::doors::Door;
use ipguard::reconcile::run::Outcome;
use ipguard_sim::DEFAULT_APP;

use crate::reconcile::{Harness, assert_outcome, desired, range};
use crate::service::{Org, alert_receiver, wait_until};

const OPS: &str = "Custom%3A Ops";
const OPS_USER: &str = "ops@acme-sim.example";

/// An org where `Custom%3A Ops` (open to the world) has one active user, who can use the app
/// only through a permission set group holding a permission set that grants it.
async fn org_with_ops_granted_through_a_group(extra: &[(&'static str, &str)]) -> Harness {
    let h = Harness::start(|_| {}, extra).await;
    grant_ops_through_a_group(&h.sim);
    h
}

fn grant_ops_through_a_group(sim: &ipguard_sim::SimOrg) {
    sim.add_profile(OPS, vec![range("0.0.0.0", "255.255.255.255")]);
    sim.add_user(OPS_USER, OPS, true);
    sim.add_permission_set("IPGuard_Access");
    sim.grant_app_to_permission_set(DEFAULT_APP, "IPGuard_Access");
    sim.add_permission_set_group("Ops_Bundle", &["IPGuard_Access"]);
    sim.assign_permission_set_group(OPS_USER, "Ops_Bundle");
}

fn names(report: &ipguard::reconcile::run::RunReport) -> Vec<String> {
    report.guarded.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn a_profile_granted_through_a_permission_set_group_becomes_guarded() {
    let h = org_with_ops_granted_through_a_group(&[
        ("IPGUARD_PROFILES", "@app:IPGuard"),
        ("IPGUARD_POLICY", "exact"),
    ])
    .await;
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    // The integration user's profile holds the app directly; Ops through the group.
    assert_eq!(
        names(&report),
        ["Custom%3A Integration", OPS],
        "{report:#?}"
    );
    let via: Vec<String> = report
        .grants
        .iter()
        .map(|g| format!("{} {}", g.profile, g.via))
        .collect();
    assert!(
        via.contains(&format!("{OPS} through permission set group Ops_Bundle")),
        "{via:?}"
    );
    assert_eq!(h.sim.login_ip_ranges(OPS).unwrap(), desired());
    // Profiles no app is granted to are left alone.
    assert_eq!(
        h.sim.login_ip_ranges("Custom%3A Support").unwrap(),
        vec![range("198.51.100.0", "198.51.100.255")]
    );
}

#[tokio::test]
async fn an_inactive_user_or_a_direct_permission_set_counts_as_salesforce_says() {
    let h = Harness::start(|_| {}, &[("IPGUARD_PROFILES", "@app:IPGuard")]).await;
    h.sim.add_profile("Custom%3A Gone", Vec::new());
    h.sim
        .add_user("gone@acme-sim.example", "Custom%3A Gone", false);
    h.sim.add_profile("Custom%3A Api", Vec::new());
    h.sim
        .add_user("api@acme-sim.example", "Custom%3A Api", true);
    h.sim.add_permission_set("IPGuard_Access");
    h.sim
        .grant_app_to_permission_set(DEFAULT_APP, "IPGuard_Access");
    h.sim
        .assign_permission_set("gone@acme-sim.example", "IPGuard_Access");
    h.sim
        .assign_permission_set("api@acme-sim.example", "IPGuard_Access");
    let report = h.run().await;
    assert_eq!(
        names(&report),
        ["Custom%3A Api", "Custom%3A Integration"],
        "{report:#?}"
    );
}

#[tokio::test]
async fn an_exclusion_holds() {
    let h = org_with_ops_granted_through_a_group(&[
        ("IPGUARD_PROFILES", "@app:IPGuard,!Custom%3A Ops"),
        ("IPGUARD_POLICY", "exact"),
    ])
    .await;
    let report = h.run().await;
    assert_eq!(names(&report), ["Custom%3A Integration"], "{report:#?}");
    assert_eq!(
        h.sim.login_ip_ranges(OPS).unwrap(),
        vec![range("0.0.0.0", "255.255.255.255")]
    );
}

#[tokio::test]
async fn relaxation_flipped_to_relax_is_flipped_back_in_one_deploy_with_the_drifted_profiles() {
    let h = Harness::start(
        |_| {},
        &[
            ("IPGUARD_PROFILES", "Admin,Custom%3A Integration"),
            ("IPGUARD_SIDE_DOORS", "app-relaxation"),
        ],
    )
    .await;
    // Settled first: the profiles hold the space's IPs.
    assert_outcome(&h.run().await, Outcome::Remediated);
    let deploys = h.sim.count("deploy");
    h.sim
        .set_eca_policy_field(DEFAULT_APP, "sessionTimeoutInMinutes", Some("30"));
    h.sim.set_external_client_app(DEFAULT_APP, Some("Bypass"));
    h.sim
        .set_login_ip_ranges("Admin", vec![range("0.0.0.0", "255.255.255.255")]);

    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert_eq!(h.sim.count("deploy") - deploys, 1, "one deploy for both");
    let plan = report.plan.as_ref().unwrap();
    assert_eq!(plan.drifted().count(), 1);
    let door = &plan.doors[0];
    assert_eq!(
        (door.actual.as_str(), door.wanted.as_str(), door.in_sync),
        ("Bypass", "Enforce", false)
    );
    assert!(report.verified.as_ref().unwrap().doors[0].in_sync);
    // Who opened it, from the audit trail, as for a profile.
    let attribution = report.attribution.as_ref().unwrap();
    assert!(
        attribution
            .doors
            .iter()
            .any(|a| a.door == Door::AppRelaxation && a.changed_by == ipguard_sim::ADMIN_USERNAME),
        "{attribution:#?}"
    );
    assert_eq!(h.sim.ip_relaxation(DEFAULT_APP).as_deref(), Some("Enforce"));
    // merge (the default) keeps the admin's range beside the space's IPs.
    assert!(
        h.sim
            .login_ip_ranges("Admin")
            .unwrap()
            .contains(&desired()[0])
    );
    // The policies' other fields are as they were: the file carried them back.
    assert_eq!(
        h.sim
            .eca_policy_field(DEFAULT_APP, "sessionTimeoutInMinutes")
            .as_deref(),
        Some("30")
    );
    // In sync now: nothing more is deployed.
    assert_outcome(&h.run().await, Outcome::InSync);
}

#[tokio::test]
async fn a_legacy_connected_app_relaxation_is_enforced_too() {
    let h = Harness::start(
        |c| c.external_client_apps.clear(),
        &[
            ("IPGUARD_PROFILES", "Custom%3A Integration"),
            ("IPGUARD_SIDE_DOORS", "app-relaxation"),
            ("IPGUARD_APP", "Legacy_App"),
        ],
    )
    .await;
    h.sim.set_connected_app("Legacy_App", Some("BYPASS"));
    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert_eq!(
        h.sim.ip_relaxation("Legacy_App").as_deref(),
        Some("ENFORCE")
    );
    // The app was written back whole: what was not the relaxation is as it was.
    let before = [
        "contactEmail",
        "oauthPolicy/refreshTokenPolicy",
        "oauthConfig/consumerKey",
    ];
    for field in before {
        assert!(
            h.sim.connected_app_field("Legacy_App", field).is_some(),
            "{field} was lost"
        );
    }
    assert_eq!(
        h.sim
            .connected_app_field("Legacy_App", "oauthPolicy/refreshTokenPolicy")
            .as_deref(),
        Some("infinite")
    );
}

#[tokio::test]
async fn every_request_turned_off_is_turned_back_on_and_nothing_else_changes() {
    let h = Harness::start(
        |_| {},
        &[
            ("IPGUARD_PROFILES", "Custom%3A Integration"),
            ("IPGUARD_SIDE_DOORS", "every-request"),
        ],
    )
    .await;
    h.sim.set_session_setting("lockSessionsToIp", "true");
    h.sim.set_session_setting("sessionTimeout", "FourHours");
    h.sim.set_enforce_ip_ranges_every_request(false);

    let report = h.run().await;
    assert_outcome(&report, Outcome::Remediated);
    assert!(h.sim.enforce_ip_ranges_every_request());
    assert_eq!(
        h.sim.session_setting("lockSessionsToIp").as_deref(),
        Some("true")
    );
    assert_eq!(
        h.sim.session_setting("sessionTimeout").as_deref(),
        Some("FourHours")
    );
    assert_outcome(&h.run().await, Outcome::InSync);
}

#[tokio::test]
async fn an_unguarded_door_is_read_by_check_but_never_deployed() {
    let h = Harness::start(|_| {}, &[("IPGUARD_PROFILES", "Custom%3A Integration")]).await;
    h.sim.set_enforce_ip_ranges_every_request(false);
    h.sim.set_external_client_app(DEFAULT_APP, Some("Bypass"));
    let report = h.run().await;
    assert!(report.plan.as_ref().unwrap().doors.is_empty());
    assert!(!h.sim.enforce_ip_ranges_every_request());
    assert_eq!(h.sim.ip_relaxation(DEFAULT_APP).as_deref(), Some("Bypass"));
}

#[tokio::test]
async fn a_newly_granted_profile_raises_one_alert_and_a_revoked_one_is_reported_once() {
    let (hook, received) = alert_receiver().await;
    let org = Org::start(&[
        ("IPGUARD_ALERT_WEBHOOK_URL", hook.as_str()),
        ("IPGUARD_PROFILES", "@app:IPGuard"),
    ])
    .await;
    let app = org.serve().await;
    let reconcile = async || {
        app.reconcile_and_wait().await;
    };
    reconcile().await;
    let texts = || received.lock().unwrap().clone();
    let guard_alerts = |needle: &str| texts().iter().filter(|t| t.contains(needle)).count();

    grant_ops_through_a_group(&org.sim);
    reconcile().await;
    reconcile().await;
    wait_until("the guard alert", Duration::from_secs(10), async || {
        guard_alerts("now guarding Custom%3A Ops") == 1
    })
    .await;
    assert!(
        texts().iter().any(|t| t.contains(
            "it was granted access to app IPGuard (through permission set group Ops_Bundle)"
        )),
        "{:#?}",
        texts()
    );

    // /status says why the profile is guarded.
    let status = app.status_json().await;
    let ops = status["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == OPS)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ops["granted"][0], "app IPGuard, through permission set group Ops_Bundle",
        "{status:#}"
    );

    org.sim.unassign_all(OPS_USER);
    reconcile().await;
    reconcile().await;
    wait_until(
        "the no-longer-guarded alert",
        Duration::from_secs(10),
        async || guard_alerts("no longer guarding Custom%3A Ops") == 1,
    )
    .await;
    // Once each, however many runs saw it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        guard_alerts("now guarding Custom%3A Ops"),
        1,
        "{:#?}",
        texts()
    );
    assert_eq!(guard_alerts("no longer guarding"), 1, "{:#?}", texts());
    app.service.stop().await;
}
