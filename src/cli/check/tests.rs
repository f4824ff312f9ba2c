use super::profiles_check::closest;
use super::*;

fn listed() -> Vec<String> {
    [
        "Admin",
        "Custom%3A Support",
        "Custom%3A Integration",
        "Standard",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn a_decoded_or_mistyped_name_suggests_the_listed_full_name() {
    let listed = listed();
    assert_eq!(
        closest("Custom: Support", &listed),
        Some("Custom%3A Support")
    );
    assert_eq!(
        closest("custom:  support", &listed),
        Some("Custom%3A Support")
    );
    assert_eq!(closest("Admn", &listed), Some("Admin"));
    assert_eq!(
        closest("Custom: Integraton", &listed),
        Some("Custom%3A Integration")
    );
    assert_eq!(closest("Marketing User", &listed), None);
}

#[test]
fn lines_render_with_glyphs_or_words_and_one_fix() {
    let fail = CheckLine::fail("token", "refused.", "do this");
    assert_eq!(fail.render(true), "✗ token — refused. Fix: do this");
    assert_eq!(fail.render(false), "[FAIL] token — refused. Fix: do this");
    assert_eq!(
        CheckLine::ok("heroku", "fine").render(true),
        "✓ heroku — fine"
    );
    assert_eq!(
        CheckLine::skipped("profiles", "no token").render(false),
        "[skip] profiles — skipped: no token"
    );
    assert!(
        CheckLine::warn("x", "y", "z")
            .render(false)
            .starts_with("[warn] x — y. Fix: z")
    );
}

#[test]
fn broad_ranges_fail_under_merge_and_warn_under_exact() {
    let records = [ProfileRecord {
        full_name: "Custom%3A Support".into(),
        ranges: vec![LoginIpRange::parse_existing("0.0.0.0", "255.255.255.255", None).unwrap()],
    }];
    let merge = broad_check(&records, Policy::Merge);
    assert_eq!(merge.status, Status::Fail);
    assert!(merge.detail.contains("0.0.0.0–255.255.255.255"));
    assert!(merge.fix.unwrap().contains("IPGUARD_POLICY=exact"));
    assert_eq!(broad_check(&records, Policy::Exact).status, Status::Warn);
    let slash8 = [ProfileRecord {
        full_name: "Admin".into(),
        ranges: vec![LoginIpRange::parse_existing("10.0.0.0", "10.255.255.255", None).unwrap()],
    }];
    assert_eq!(broad_check(&slash8, Policy::Merge).status, Status::Ok);
}

#[test]
fn a_profile_without_ranges_allows_the_space() {
    let desired = [LoginIpRange::parse_existing("203.0.113.10", "203.0.113.11", None).unwrap()];
    let records = [
        ProfileRecord {
            full_name: "Admin".into(),
            ranges: vec![],
        },
        ProfileRecord {
            full_name: "Custom%3A Integration".into(),
            ranges: vec![
                LoginIpRange::parse_existing("203.0.113.10", "203.0.113.10", None).unwrap(),
            ],
        },
    ];
    let line = integration_check(&records, &desired);
    assert_eq!(line.status, Status::Warn);
    assert!(
        line.detail
            .contains("Custom%3A Integration (lacks 203.0.113.11)")
    );
    assert!(!line.detail.contains("Admin"));
    assert_eq!(
        integration_check(&records[..1], &desired).status,
        Status::Ok
    );
}
