//! `IPGUARD_ORGS`: each org's `IPGUARD_ORG_<KEY>_…` over the shared defaults, and every problem
//! of every org reported at once under the variable to fix.

use super::*;

const PROD_ID: &str = "00D5g000004FAKEEA4";
const UAT_ID: &str = "00D5g000004SNDBEA4";

fn two_orgs() -> Vec<(&'static str, &'static str)> {
    let mut vars = salesforce_vars();
    vars.extend([
        (IPGUARD_ORGS, "prod, uat"),
        ("IPGUARD_ORG_PROD_SALESFORCE_ORG_ID", PROD_ID),
        ("IPGUARD_ORG_UAT_SALESFORCE_ORG_ID", UAT_ID),
        (
            "IPGUARD_ORG_UAT_SALESFORCE_LOGIN_URL",
            "https://acme--uat.sandbox.my.salesforce.com",
        ),
        ("IPGUARD_ORG_UAT_IPGUARD_POLICY", "exact"),
        ("IPGUARD_ORG_UAT_IPGUARD_SOURCE_IPS", "198.51.100.7"),
    ]);
    vars
}

#[test]
fn each_org_reads_its_own_variables_over_the_shared_defaults() {
    let config = ok(&two_orgs(), Needs::serve());
    let names: Vec<&str> = config.orgs.iter().map(OrgSettings::name).collect();
    assert_eq!(names, ["prod", "uat"]);
    let (prod, uat) = (&config.orgs[0], &config.orgs[1]);
    assert_eq!(
        prod.salesforce.org_id.as_ref().map(OrgId::as_str),
        Some(PROD_ID)
    );
    assert_eq!(
        uat.salesforce.org_id.as_ref().map(OrgId::as_str),
        Some(UAT_ID)
    );
    assert_eq!(
        prod.salesforce.login_url.as_str(),
        "https://login.salesforce.com/"
    );
    assert_eq!(
        uat.salesforce.login_url.as_str(),
        "https://acme--uat.sandbox.my.salesforce.com/"
    );
    // a sandbox My Domain signs in with the sandbox audience
    assert_eq!(uat.salesforce.audience, TEST_AUDIENCE);
    assert_eq!((prod.policy, uat.policy), (Policy::Merge, Policy::Exact));
    // one key pair and one External Client App for both: the shared default
    assert_eq!(prod.salesforce.username(), Some("integration@example.com"));
    assert_eq!(uat.salesforce.username(), Some("integration@example.com"));
    // the org's own sources add to the shared ones
    assert!(prod.source_ips.is_empty());
    assert_eq!(uat.source_ips.len(), 1);
    assert_eq!(config.source_ips.len(), 1);
    assert_eq!(prod.profiles.named, ["Admin", "Custom%3A Integration"]);
}

#[test]
fn every_problem_of_every_org_is_reported_under_the_variable_to_fix() {
    let mut vars = two_orgs();
    vars.retain(|(k, _)| *k != "IPGUARD_ORG_UAT_SALESFORCE_ORG_ID");
    vars.extend([
        ("IPGUARD_ORG_PROD_IPGUARD_POLICY", "loose"),
        ("IPGUARD_ORG_UAT_SALESFORCE_USERNAME", "not a username"),
        // a bad shared default is one problem, not one per org
        (IPGUARD_KEEP_WITHIN, "10.0.0.0/33"),
    ]);
    let err = err(&vars, Needs::serve());
    let named = variables(&err);
    for variable in [
        "IPGUARD_ORG_PROD_IPGUARD_POLICY",
        "IPGUARD_ORG_UAT_SALESFORCE_USERNAME",
        "IPGUARD_ORG_UAT_SALESFORCE_ORG_ID",
        IPGUARD_KEEP_WITHIN,
    ] {
        assert!(named.contains(&variable), "{variable} not named in:\n{err}");
    }
    assert_eq!(
        named.iter().filter(|v| **v == IPGUARD_KEEP_WITHIN).count(),
        1,
        "{err}"
    );
    // one org's bad value never hides the other org's
    assert!(
        !named.contains(&"IPGUARD_ORG_PROD_SALESFORCE_USERNAME"),
        "{err}"
    );
}

#[test]
fn org_keys_are_checked_and_ids_are_each_orgs_own() {
    let mut vars = two_orgs();
    vars.retain(|(k, _)| *k != IPGUARD_ORGS);
    vars.push((IPGUARD_ORGS, "prod,uat,Dev_1,uat"));
    let keys = err(&vars, Needs::serve());
    let message: Vec<&str> = keys
        .problems
        .iter()
        .filter(|p| p.variable == IPGUARD_ORGS)
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(message.len(), 2, "{keys}");
    assert!(message[0].contains("`Dev_1` is not an org key"), "{keys}");
    assert!(
        message[1].contains("`uat` is listed more than once"),
        "{keys}"
    );

    let mut vars = two_orgs();
    vars.retain(|(k, _)| *k != "IPGUARD_ORG_UAT_SALESFORCE_ORG_ID");
    vars.push(("IPGUARD_ORG_UAT_SALESFORCE_ORG_ID", PROD_ID));
    let twins = err(&vars, Needs::serve());
    assert!(
        message_for(&twins, "IPGUARD_ORG_UAT_SALESFORCE_ORG_ID").contains("org `prod`"),
        "{twins}"
    );
}

#[test]
fn the_org_a_command_names_is_the_one_it_gets() {
    let config = ok(&two_orgs(), Needs::serve());
    assert_eq!(config.org(Some("uat")).map(OrgSettings::name), Ok("uat"));
    assert!(matches!(
        config.org(None),
        Err(OrgChoiceError::Ambiguous(_))
    ));
    let unknown = config.org(Some("dev9")).unwrap_err().to_string();
    assert!(unknown.contains("prod, uat"), "{unknown}");
    assert_eq!(config.orgs_named(None).map(|o| o.len()), Ok(2));

    // the plain org id names no org once IPGUARD_ORGS is set
    let mut vars = two_orgs();
    vars.push((SALESFORCE_ORG_ID, PROD_ID));
    let plain = err(&vars, Needs::serve());
    assert!(
        message_for(&plain, SALESFORCE_ORG_ID).contains("IPGUARD_ORG_<KEY>_SALESFORCE_ORG_ID"),
        "{plain}"
    );

    let single = ok(&salesforce_vars(), Needs::serve());
    assert_eq!(single.org(None).map(|o| o.key.is_none()), Ok(true));
}
