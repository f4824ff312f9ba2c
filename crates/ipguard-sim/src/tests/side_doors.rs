//! The side doors (issue 16): Session Settings and an app's IP relaxation, read back with
//! readMetadata and deployed with ipguard's own files — PARTIAL for settings, REPLACE for
//! External Client App policies and connected apps, all-or-nothing with profiles.

use super::*;
use ipguard_wire::package::{Component, package_zip};
use ipguard_wire::side_doors::{connected_app, eca_oauth_policies, security_settings};

async fn run_deploy(sim: &SimOrg, session: &str, components: &[Component]) -> Element {
    let id = deploy(
        sim,
        session,
        &Deploy::of(package_zip(components, "66.0").unwrap()),
    )
    .await;
    poll(sim, session, &id).await.1
}

/// The single record readMetadata returns for `kind`/`name`.
async fn read_record(sim: &SimOrg, session: &str, kind: &str, name: &str) -> Element {
    let reply = soap(sim, session, &read_typed_body(kind, &[name])).await;
    reply.result().children[0].clone()
}

fn texts(element: &Element) -> Vec<(String, String)> {
    element
        .children
        .iter()
        .map(|c| (c.name.clone(), c.text.trim().to_owned()))
        .collect()
}

fn successes(result: &Element) -> Vec<Element> {
    result
        .child(METADATA_NS, "details")
        .unwrap()
        .children_named(METADATA_NS, "componentSuccesses")
        .cloned()
        .collect()
}

fn security_file(session_settings: &str) -> Component {
    Component {
        type_name: "Settings",
        member: "Security".to_owned(),
        path: "settings/Security.settings".to_owned(),
        content: format!(
            "<SecuritySettings xmlns=\"{METADATA_NS}\"><sessionSettings>{session_settings}</sessionSettings></SecuritySettings>"
        ),
    }
}

#[tokio::test]
async fn a_security_settings_deploy_changes_only_what_it_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_session_setting("lockSessionsToIp", "true");
    sim.set_session_setting("sessionTimeout", "EightHours");
    assert!(!sim.enforce_ip_ranges_every_request());
    let admin_entries = sim.audit_trail();
    assert_eq!(admin_entries.len(), 2);
    assert_eq!(admin_entries[0].section, SESSION_SETTINGS_SECTION);
    assert_eq!(admin_entries[0].username, ADMIN_USERNAME);

    let result = run_deploy(&sim, &session, &[security_settings(true)]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentsTotal"),
        Some("1")
    );
    let success = &successes(&result)[0];
    assert_eq!(
        success.child_text(METADATA_NS, "componentType"),
        Some("Settings")
    );
    assert_eq!(
        success.child_text(METADATA_NS, "fileName"),
        Some("settings/Security.settings")
    );
    assert_eq!(
        success.child_text(METADATA_NS, "fullName"),
        Some("Security")
    );
    assert_eq!(success.child_text(METADATA_NS, "changed"), Some("true"));
    assert!(sim.enforce_ip_ranges_every_request());
    assert_eq!(
        sim.session_setting("lockSessionsToIp").as_deref(),
        Some("true")
    );
    assert_eq!(
        sim.session_setting("sessionTimeout").as_deref(),
        Some("EightHours")
    );
    // readMetadata: every stored field, in SessionSettings order.
    let record = read_record(&sim, &session, "SecuritySettings", "Security").await;
    assert_eq!(names(&record), ["fullName", "sessionSettings"]);
    let settings = texts(record.child(METADATA_NS, "sessionSettings").unwrap());
    let order: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        order,
        [
            "enableCSRFOnGet",
            "enableCSRFOnPost",
            "enforceIpRangesEveryRequest",
            "forceLogoutOnSessionTimeout",
            "lockSessionsToIp",
            "requireHttpOnly",
            "sessionTimeout"
        ]
    );
    assert!(settings.contains(&("enforceIpRangesEveryRequest".into(), "true".into())));
    // The change is in the audit trail, made by the integration user.
    let entry = sim.audit_trail().pop().unwrap();
    assert_eq!(entry.section, SESSION_SETTINGS_SECTION);
    assert_eq!(entry.username, DEFAULT_USERNAME);
    assert_eq!(
        entry.display,
        "Changed Enforce login IP ranges on every request from Off to On"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_settings_file_carrying_defaults_resets_them() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_session_setting("lockSessionsToIp", "true");
    sim.set_session_setting("sessionTimeout", "EightHours");
    let file = security_file(
        "<enforceIpRangesEveryRequest>true</enforceIpRangesEveryRequest>\
         <lockSessionsToIp>false</lockSessionsToIp><sessionTimeout>TwoHours</sessionTimeout>",
    );
    let result = run_deploy(&sim, &session, &[file]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert!(sim.enforce_ip_ranges_every_request());
    assert_eq!(
        sim.session_setting("lockSessionsToIp").as_deref(),
        Some("false")
    );
    assert_eq!(
        sim.session_setting("sessionTimeout").as_deref(),
        Some("TwoHours")
    );
    sim.stop().await;
}

#[tokio::test]
async fn settings_beyond_session_settings_and_bad_booleans_are_refused() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let other = Component {
        content: format!(
            "<SecuritySettings xmlns=\"{METADATA_NS}\"><networkAccess></networkAccess>\
             <sessionSettings><enforceIpRangesEveryRequest>true</enforceIpRangesEveryRequest></sessionSettings></SecuritySettings>"
        ),
        ..security_settings(true)
    };
    let result = run_deploy(&sim, &session, &[other]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(
        failures(&result)[0].child_text(METADATA_NS, "problem"),
        Some("the simulated org deploys only sessionSettings of SecuritySettings")
    );
    let bad = security_file("<enforceIpRangesEveryRequest>True</enforceIpRangesEveryRequest>");
    let result = run_deploy(&sim, &session, &[bad]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert!(!sim.enforce_ip_ranges_every_request());
    sim.stop().await;
}

#[tokio::test]
async fn an_eca_policies_deploy_replaces_the_record() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_external_client_app(DEFAULT_APP, Some("Bypass"));
    sim.set_eca_policy_field(DEFAULT_APP, "sessionTimeoutInMinutes", Some("30"));
    sim.set_eca_policy_field(DEFAULT_APP, "commaSeparatedPermissionSet", Some("Ops"));
    assert_eq!(sim.ip_relaxation(DEFAULT_APP).as_deref(), Some("Bypass"));
    let audit = sim.audit_trail();
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[0].section, EXTERNAL_CLIENT_APPS_SECTION);
    assert_eq!(
        audit[0].display,
        "Changed IP relaxation for IPGuard from Enforce to Bypass"
    );

    let record = read_record(
        &sim,
        &session,
        "ExtlClntAppOauthConfigurablePolicies",
        "IPGuard_oauthPlcy",
    )
    .await;
    assert_eq!(
        names(&record),
        [
            "fullName",
            "commaSeparatedPermissionSet",
            "externalClientApplication",
            "ipRelaxationPolicyType",
            "isClientCredentialsFlowEnabled",
            "label",
            "permittedUsersPolicyType",
            "refreshTokenPolicyType",
            "sessionTimeoutInMinutes"
        ]
    );
    // ipguard's file from the record as read, minus one field: that field is gone after.
    let read: Vec<Element> = record
        .children
        .iter()
        .filter(|c| c.name != "sessionTimeoutInMinutes")
        .cloned()
        .collect();
    let result = run_deploy(&sim, &session, &[eca_oauth_policies(DEFAULT_APP, &read)]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    let success = &successes(&result)[0];
    assert_eq!(
        success.child_text(METADATA_NS, "componentType"),
        Some("ExtlClntAppOauthConfigurablePolicies")
    );
    assert_eq!(
        success.child_text(METADATA_NS, "fileName"),
        Some("extlClntAppOauthPolicies/IPGuard_oauthPlcy.ecaOauthPlcy")
    );
    assert_eq!(sim.ip_relaxation(DEFAULT_APP).as_deref(), Some("Enforce"));
    assert_eq!(
        sim.eca_policy_field(DEFAULT_APP, "sessionTimeoutInMinutes"),
        None
    );
    assert_eq!(
        sim.eca_policy_field(DEFAULT_APP, "commaSeparatedPermissionSet")
            .as_deref(),
        Some("Ops")
    );
    let displays: Vec<String> = sim
        .audit_trail()
        .into_iter()
        .skip(3)
        .map(|e| {
            assert_eq!(e.username, DEFAULT_USERNAME);
            e.display
        })
        .collect();
    assert_eq!(
        displays,
        [
            "Changed IP relaxation for IPGuard from Bypass to Enforce",
            "Changed sessionTimeoutInMinutes for IPGuard from 30 to (none)"
        ]
    );
    sim.stop().await;
}

#[tokio::test]
async fn an_invalid_relaxation_fails_and_rolls_back_the_profiles() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_external_client_app(DEFAULT_APP, Some("Bypass"));
    let support_before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let profile = Component::profile(
        &ProfileName::parse("Custom%3A Support").unwrap(),
        &[range("52.1.2.3", "52.1.2.3")],
    );
    let mut policies = eca_oauth_policies(
        DEFAULT_APP,
        &xml::parse(
            format!(
                "<r xmlns=\"{METADATA_NS}\"><externalClientApplication>IPGuard</externalClientApplication></r>"
            )
            .as_bytes(),
        )
        .unwrap()
        .children,
    );
    policies.content = policies.content.replace(">Enforce<", ">ENFORCE<");
    let result = run_deploy(&sim, &session, &[profile, policies]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentsTotal"),
        Some("2")
    );
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentErrors"),
        Some("1")
    );
    let failure = &failures(&result)[0];
    assert_eq!(
        failure.child_text(METADATA_NS, "componentType"),
        Some("ExtlClntAppOauthConfigurablePolicies")
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "fullName"),
        Some("IPGuard_oauthPlcy")
    );
    assert!(
        failure
            .child_text(METADATA_NS, "problem")
            .unwrap()
            .starts_with("Invalid value 'ENFORCE' for ipRelaxationPolicyType")
    );
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&support_before)
    );
    assert_eq!(sim.ip_relaxation(DEFAULT_APP).as_deref(), Some("Bypass"));
    // An app the org does not have is not created.
    let ghost = eca_oauth_policies(
        "Ghost",
        &xml::parse(
            format!(
                "<r xmlns=\"{METADATA_NS}\"><externalClientApplication>Ghost</externalClientApplication></r>"
            )
            .as_bytes(),
        )
        .unwrap()
        .children,
    );
    let result = run_deploy(&sim, &session, &[ghost]).await;
    assert_eq!(
        failures(&result)[0].child_text(METADATA_NS, "problem"),
        Some(
            "In field: externalClientApplication - no ExternalClientApplication named Ghost found"
        )
    );
    assert_eq!(sim.ip_relaxation("Ghost"), None);
    sim.stop().await;
}

#[tokio::test]
async fn a_connected_app_deploy_sets_its_ip_relaxation() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_connected_app("IPGuard_Legacy", Some("BYPASS"));
    let record = read_record(&sim, &session, "ConnectedApp", "IPGuard_Legacy").await;
    assert_eq!(
        names(&record),
        [
            "fullName",
            "contactEmail",
            "label",
            "oauthConfig",
            "oauthPolicy"
        ]
    );
    let policy = record.child(METADATA_NS, "oauthPolicy").unwrap();
    assert_eq!(
        texts(policy),
        [
            ("ipRelaxation".to_owned(), "BYPASS".to_owned()),
            ("refreshTokenPolicy".to_owned(), "infinite".to_owned())
        ]
    );
    let consumer_key = sim
        .connected_app_field("IPGuard_Legacy", "oauthConfig/consumerKey")
        .unwrap();
    let file = connected_app("IPGuard_Legacy", &record.children).unwrap();
    let result = run_deploy(&sim, &session, &[file]).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    let success = &successes(&result)[0];
    assert_eq!(
        success.child_text(METADATA_NS, "componentType"),
        Some("ConnectedApp")
    );
    assert_eq!(
        success.child_text(METADATA_NS, "fileName"),
        Some("connectedApps/IPGuard_Legacy.connectedApp")
    );
    assert_eq!(
        sim.ip_relaxation("IPGuard_Legacy").as_deref(),
        Some("ENFORCE")
    );
    assert_eq!(
        sim.connected_app_field("IPGuard_Legacy", "oauthPolicy/refreshTokenPolicy")
            .as_deref(),
        Some("infinite")
    );
    assert_eq!(
        sim.connected_app_field("IPGuard_Legacy", "oauthConfig/consumerKey"),
        Some(consumer_key)
    );
    assert_eq!(
        sim.connected_app_field("IPGuard_Legacy", "contactEmail")
            .as_deref(),
        Some(ADMIN_USERNAME)
    );
    let entry = sim.audit_trail().pop().unwrap();
    assert_eq!(entry.section, CONNECTED_APPS_SECTION);
    assert_eq!(
        entry.display,
        "Changed IP relaxation for IPGuard_Legacy from BYPASS to ENFORCE"
    );
    assert_eq!(entry.username, DEFAULT_USERNAME);
    sim.stop().await;
}
