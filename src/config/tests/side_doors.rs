//! `IPGUARD_PROFILES` entries (`@app:`, `!`), `IPGUARD_APP` and `IPGUARD_SIDE_DOORS`
//! (docs/contract.md §9).

use super::*;
use crate::reconcile::doors::Door;

#[test]
fn app_and_exclusion_entries_are_read_beside_full_names() {
    let config = ok(
        &[(
            IPGUARD_PROFILES,
            "@app:IPGuard, Admin, !Custom%3A Break Glass",
        )],
        Needs::default(),
    );
    let selection = &config.orgs[0].profiles;
    assert_eq!(selection.named, ["Admin"]);
    assert_eq!(selection.apps, ["IPGuard"]);
    assert_eq!(selection.excluded, ["Custom%3A Break Glass"]);
    assert_eq!(
        selection.entries(),
        ["Admin", "@app:IPGuard", "!Custom%3A Break Glass"]
    );
}

#[test]
fn an_app_alone_is_enough_to_call_salesforce() {
    let mut vars = salesforce_vars();
    vars.retain(|(k, _)| *k != IPGUARD_PROFILES);
    vars.push((IPGUARD_PROFILES, "@app:IPGuard"));
    let config = ok(&vars, Needs::salesforce());
    assert!(config.orgs[0].profiles.named.is_empty());
    // Only exclusions guard nothing.
    let mut vars = salesforce_vars();
    vars.retain(|(k, _)| *k != IPGUARD_PROFILES);
    vars.push((IPGUARD_PROFILES, "!Admin"));
    let e = err(&vars, Needs::salesforce());
    assert_eq!(variables(&e), [IPGUARD_PROFILES]);
}

#[test]
fn bad_entries_are_named_and_a_listed_profile_cannot_be_excluded() {
    let e = err(
        &[(IPGUARD_PROFILES, "@app:, @app:two words,Admin,!Admin")],
        Needs::default(),
    );
    assert_eq!(
        variables(&e),
        [IPGUARD_PROFILES, IPGUARD_PROFILES, IPGUARD_PROFILES]
    );
    assert!(e.problems[0].message.contains("`@app:`"), "{e}");
    assert!(
        e.problems[2].message.contains("both listed and excluded"),
        "{e}"
    );
}

#[test]
fn exact_profiles_may_name_app_granted_profiles() {
    let config = ok(
        &[
            (IPGUARD_PROFILES, "@app:IPGuard"),
            (IPGUARD_EXACT_PROFILES, "Custom%3A Ops"),
        ],
        Needs::default(),
    );
    assert_eq!(config.orgs[0].exact_profiles, ["Custom%3A Ops"]);
}

#[test]
fn side_doors_and_the_app_have_defaults_and_named_problems() {
    let config = ok(&[], Needs::default());
    let doors = &config.orgs[0].side_doors;
    assert!(doors.guarded.is_empty());
    assert_eq!(doors.app, "IPGuard");

    let config = ok(
        &[
            (
                IPGUARD_SIDE_DOORS,
                "app-relaxation, every-request,every-request",
            ),
            (IPGUARD_APP, "Legacy_App"),
        ],
        Needs::default(),
    );
    let doors = &config.orgs[0].side_doors;
    assert_eq!(doors.guarded, [Door::AppRelaxation, Door::EveryRequest]);
    assert_eq!(doors.app, "Legacy_App");

    let e = err(
        &[
            (IPGUARD_SIDE_DOORS, "every_request"),
            (IPGUARD_APP, "two words"),
        ],
        Needs::default(),
    );
    assert_eq!(variables(&e), [IPGUARD_APP, IPGUARD_SIDE_DOORS]);
    assert!(message_for(&e, IPGUARD_SIDE_DOORS).contains("`every_request`"));
}

#[test]
fn each_org_may_guard_its_own_doors() {
    let config = ok(
        &[
            (IPGUARD_ORGS, "prod,uat"),
            (IPGUARD_SIDE_DOORS, "every-request"),
            ("IPGUARD_ORG_UAT_IPGUARD_SIDE_DOORS", "app-relaxation"),
            ("IPGUARD_ORG_PROD_SALESFORCE_ORG_ID", "00D000000000001EAA"),
            ("IPGUARD_ORG_UAT_SALESFORCE_ORG_ID", "00D000000000002EAA"),
        ],
        Needs::default(),
    );
    assert_eq!(config.orgs[0].side_doors.guarded, [Door::EveryRequest]);
    assert_eq!(config.orgs[1].side_doors.guarded, [Door::AppRelaxation]);
}
