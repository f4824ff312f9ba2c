//! What ipguard asserts: the source IPs, the Heroku space, and the policy with its exact
//! profiles and keep-within blocks.

use super::*;

#[test]
fn source_ips_become_networks_and_bad_entries_are_named() {
    let config = ok(
        &[(
            IPGUARD_SOURCE_IPS,
            "52.1.2.3, 10.0.0.0/28,2001:db8::1,2001:db8::/64",
        )],
        Needs::sources(),
    );
    let nets: Vec<String> = config.source_ips.iter().map(ToString::to_string).collect();
    assert_eq!(
        nets,
        [
            "52.1.2.3/32",
            "10.0.0.0/28",
            "2001:db8::1/128",
            "2001:db8::/64"
        ]
    );

    let e = err(
        &[(IPGUARD_SOURCE_IPS, "1.2.3, 52.1.2.3, ::g")],
        Needs::default(),
    );
    assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS, IPGUARD_SOURCE_IPS]);
    assert!(e.problems[0].message.contains("`1.2.3`"));
    assert!(e.problems[1].message.contains("`::g`"));
    let e = err(&[(IPGUARD_SOURCE_IPS, "2001:db8::1/64")], Needs::default());
    assert!(message_for(&e, IPGUARD_SOURCE_IPS).contains("`2001:db8::/64`"));
}

#[test]
fn heroku_settings_come_as_a_pair() {
    let config = ok(
        &[(HEROKU_SPACE, "acme-space"), (HEROKU_API_TOKEN, "hrku-abc")],
        Needs::sources(),
    );
    let heroku = config.heroku.expect("heroku");
    assert_eq!(heroku.space, "acme-space");
    assert_eq!(heroku.api_token.expose_secret(), "hrku-abc");
    assert_eq!(heroku.api_url.as_str(), "https://api.heroku.com/");

    let config = ok(
        &[
            (HEROKU_SPACE, "acme-space"),
            (HEROKU_API_TOKEN, "hrku-abc"),
            (HEROKU_API_URL, "http://127.0.0.1:4567"),
        ],
        Needs::default(),
    );
    assert_eq!(
        config.heroku.expect("heroku").api_url.as_str(),
        "http://127.0.0.1:4567/"
    );

    let e = err(&[(HEROKU_SPACE, "acme-space")], Needs::sources());
    // The missing partner is the problem; "no source" would be noise on top.
    assert_eq!(variables(&e), [HEROKU_API_TOKEN]);
    let e = err(&[(HEROKU_API_TOKEN, "hrku-abc")], Needs::sources());
    assert_eq!(variables(&e), [HEROKU_SPACE]);
    let e = err(
        &[(HEROKU_SPACE, "../apps"), (HEROKU_API_TOKEN, "hrku-abc")],
        Needs::default(),
    );
    assert_eq!(variables(&e), [HEROKU_SPACE]);
}

#[test]
fn exact_profiles_and_keep_within() {
    let mut vars = salesforce_vars();
    vars.push((IPGUARD_EXACT_PROFILES, "Custom%3A Integration"));
    vars.push((IPGUARD_KEEP_WITHIN, "10.0.0.0/8, 198.51.100.7"));
    let config = ok(&vars, Needs::salesforce());
    assert_eq!(config.orgs[0].exact_profiles, ["Custom%3A Integration"]);
    let keep: Vec<String> = config.orgs[0]
        .keep_within
        .clone()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keep, ["10.0.0.0/8", "198.51.100.7/32"]);
    assert_eq!(
        ok(&salesforce_vars(), Needs::salesforce()).orgs[0].keep_within,
        None
    );

    // a profile that is not managed, and a bad CIDR: both reported, on their variables
    let mut vars = salesforce_vars();
    vars.push((IPGUARD_EXACT_PROFILES, "Custom: Integration"));
    vars.push((IPGUARD_KEEP_WITHIN, "10.0.0.0/33"));
    let err = err(&vars, Needs::salesforce());
    assert!(message_for(&err, IPGUARD_EXACT_PROFILES).contains("not in IPGUARD_PROFILES"));
    assert!(!message_for(&err, IPGUARD_KEEP_WITHIN).is_empty());
}

#[test]
fn policy_and_mode_names() {
    assert_eq!(Policy::Merge.as_str(), "merge");
    assert_eq!(Policy::Exact.to_string(), "exact");
    assert_eq!(Mode::Enforce.as_str(), "enforce");
    assert_eq!(Mode::DryRun.as_str(), "dry-run");
    assert_eq!(
        serde_json::to_string(&Policy::Exact).expect("json"),
        "\"exact\""
    );
    assert_eq!(
        serde_json::to_string(&Mode::DryRun).expect("json"),
        "\"dry-run\""
    );
    assert_eq!(
        serde_json::from_str::<Mode>("\"dry-run\"").expect("json"),
        Mode::DryRun
    );
    assert_eq!(
        serde_json::from_str::<Policy>("\"merge\"").expect("json"),
        Policy::Merge
    );
    // The parser accepts exactly what as_str produces.
    for mode in [Mode::Enforce, Mode::DryRun] {
        assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
    }
    for policy in [Policy::Merge, Policy::Exact] {
        assert_eq!(policy.as_str().parse::<Policy>(), Ok(policy));
    }
    // Names are exact: no case folding, no near misses.
    let e = "Merge".parse::<Policy>().expect_err("case matters");
    assert_eq!(e.value, "Merge");
    assert!("dry_run".parse::<Mode>().is_err());
}
