//! Drift attribution from SetupAuditTrail against the simulated org over real HTTP (docs/contract.md §5 rule 9):
//! the REST query, who is blamed, who never is, and the failure paths.

use std::time::Duration;

use chrono::Utc;
use ipguard::reconcile::attribution::{self, AttributionResult, Matchers};
use ipguard::reconcile::run::Outcome;
use ipguard::salesforce::client::SalesforceError;
use ipguard::salesforce::profile::ProfileName;
use ipguard_sim::{ADMIN_USERNAME, FailureKind, Faults};

use crate::reconcile::{Harness, range};

fn name(n: &str) -> ProfileName {
    ProfileName::parse(n).unwrap()
}

/// The run harness of `reconcile`, with short deploy phases.
async fn start() -> Harness {
    Harness::start(
        |c| {
            c.pending_for = Duration::from_millis(40);
            c.in_progress_for = Duration::from_millis(40);
        },
        &[],
    )
    .await
}

impl Harness {
    fn username(&self) -> String {
        self.config.orgs[0]
            .salesforce
            .username()
            .unwrap()
            .to_owned()
    }

    /// What the lead's two lines do after a drifted plan.
    async fn attribute(&self, profiles: &[ProfileName]) -> AttributionResult {
        let since = attribution::window_start(Utc::now(), attribution::DEFAULT_WINDOW);
        attribution::attribute(
            &self.parts.client,
            profiles,
            &[],
            since,
            &self.username(),
            &Matchers::default(),
        )
        .await
    }

    /// A real run: remediates whatever drift there is with one deploy as the integration user.
    async fn remediate(&self) {
        let report = self.run().await;
        assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    }
}

#[tokio::test]
async fn an_admin_edit_is_attributed_to_the_admin_at_its_time() {
    let h = start().await;
    h.sim.set_login_ip_ranges(
        "Custom%3A Support",
        vec![range("0.0.0.0", "255.255.255.255")],
    );
    let recorded = h.sim.audit_trail();
    assert_eq!(recorded.len(), 1);
    let support = name("Custom%3A Support");
    let result = h.attribute(std::slice::from_ref(&support)).await;
    assert_eq!(result.attributions.len(), 1, "{result:#?}");
    let a = &result.attributions[0];
    assert_eq!(a.profile, support);
    assert_eq!(a.changed_by, ADMIN_USERNAME);
    assert_eq!(a.changed_at, recorded[0].created_date);
    assert_eq!(a.action, recorded[0].action);
    // The audit trail names the LABEL; ipguard holds `Custom%3A Support`.
    assert_eq!(
        a.display,
        "Changed login IP range for profile Custom: Support from 198.51.100.0 - 198.51.100.255 \
         to 0.0.0.0 - 255.255.255.255"
    );
    assert!(result.unattributed.is_empty() && result.notes.is_empty());
    assert_eq!(h.sim.count("query"), 1);
    // Serialises for /status and history.
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["attributions"][0]["changed_by"], ADMIN_USERNAME);
    assert_eq!(json["attributions"][0]["profile"], "Custom%3A Support");
    h.sim.stop().await;
}

#[tokio::test]
async fn ipguards_own_deploys_are_never_attributed() {
    let h = start().await;
    // The initial org drifts: ipguard's deploy changes every guarded profile.
    h.remediate().await;
    let trail = h.sim.audit_trail();
    assert!(!trail.is_empty());
    assert!(
        trail.iter().all(|e| e.username == h.username()),
        "{trail:#?}"
    );
    let result = h.attribute(&h.parts.profiles.named).await;
    assert!(result.attributions.is_empty(), "{result:#?}");
    assert_eq!(result.unattributed, h.parts.profiles.named);

    // An admin loosens a profile, ipguard reverts it: only the admin is named, once.
    h.sim
        .set_login_ip_ranges("Admin", vec![range("0.0.0.0", "255.255.255.255")]);
    h.remediate().await;
    let result = h.attribute(&[name("Admin")]).await;
    let who: Vec<&str> = result
        .attributions
        .iter()
        .map(|a| a.changed_by.as_str())
        .collect();
    assert_eq!(who, [ADMIN_USERNAME], "{result:#?}");
    // Standard profile `Admin` is shown as "System Administrator" in Setup.
    assert!(
        result.attributions[0]
            .display
            .contains("System Administrator")
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn an_expired_rest_session_costs_exactly_one_re_login() {
    let h = start().await;
    h.sim.set_login_ip_ranges("Custom%3A Support", vec![]);
    // Warm the session with a SOAP call, then kill it on the REST call.
    h.parts.client.list_profiles().await.unwrap();
    h.sim.set_faults(Faults {
        next_failures: vec![FailureKind::InvalidSession],
        ..Faults::default()
    });
    h.sim.clear_calls();
    let result = h.attribute(&[name("Custom%3A Support")]).await;
    assert_eq!(result.attributions.len(), 1, "{result:#?}");
    let calls: Vec<(String, String)> = h
        .sim
        .calls()
        .into_iter()
        .map(|c| (c.operation, c.outcome))
        .collect();
    let expected = [
        ("query", "INVALID_SESSION_ID"),
        ("token", "ok"),
        ("query", "ok"),
    ]
    .map(|(o, r)| (o.to_owned(), r.to_owned()));
    assert_eq!(calls, expected);

    // A session that keeps dying is not chased: one re-login, then the error.
    h.sim.set_faults(Faults {
        next_failures: vec![FailureKind::InvalidSession, FailureKind::InvalidSession],
        ..Faults::default()
    });
    h.sim.clear_calls();
    let error = h
        .parts
        .client
        .query_json("SELECT Id FROM SetupAuditTrail")
        .await;
    assert!(
        matches!(&error, Err(e) if e.is_invalid_session()),
        "{error:?}"
    );
    assert_eq!(h.sim.count("token"), 1);
    h.sim.stop().await;
}

#[tokio::test]
async fn a_request_limit_is_retried_and_a_refusal_becomes_a_note() {
    let h = start().await;
    h.sim.set_login_ip_ranges("Custom%3A Support", vec![]);
    h.sim.set_faults(Faults {
        next_failures: vec![FailureKind::RequestLimitExceeded],
        ..Faults::default()
    });
    let support = name("Custom%3A Support");
    let result = h.attribute(std::slice::from_ref(&support)).await;
    assert_eq!(result.attributions.len(), 1, "{result:#?}");
    assert_eq!(
        h.sim.count("query"),
        2,
        "403 REQUEST_LIMIT_EXCEEDED is transient"
    );

    h.sim.set_audit_trail_readable(false);
    h.sim.clear_calls();
    let result = h.attribute(std::slice::from_ref(&support)).await;
    assert!(result.attributions.is_empty());
    assert_eq!(result.unattributed, [support]);
    assert_eq!(result.notes.len(), 1);
    assert!(
        result.notes[0].contains("INSUFFICIENT_ACCESS")
            && result.notes[0].contains("View Setup and Configuration"),
        "{:?}",
        result.notes
    );
    assert_eq!(h.sim.count("query"), 1, "a refusal is not retried");
    h.sim.stop().await;
}

#[tokio::test]
async fn query_pages_are_followed_and_errors_are_typed() {
    let h = start().await;
    for i in 0..5u8 {
        let ip = format!("192.0.2.{i}");
        h.sim
            .set_login_ip_ranges("Custom%3A Support", vec![range(&ip, &ip)]);
    }
    h.sim.set_query_page_size(2);
    let answer = h
        .parts
        .client
        .query_json("SELECT Id, CreatedDate FROM SetupAuditTrail ORDER BY CreatedDate DESC")
        .await
        .unwrap();
    assert_eq!(answer["done"], true);
    assert_eq!(answer["records"].as_array().unwrap().len(), 5);
    assert_eq!(h.sim.count("query"), 3);
    let ids: Vec<String> = h
        .sim
        .audit_trail()
        .into_iter()
        .rev()
        .map(|e| e.id)
        .collect();
    let got: Vec<&str> = answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids);

    let bad = h.parts.client.query_json("SELECT Id FROM Account").await;
    assert!(
        matches!(&bad, Err(SalesforceError::Rest { status: 400, code, .. }) if code == "INVALID_TYPE"),
        "{bad:?}"
    );
    h.sim.stop().await;
}
