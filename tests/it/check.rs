//! `ipguard check` (the doctor) as a newcomer runs it against the simulated org: one line per
//! check, `[ok]`/`[warn]`/`[FAIL]`/`[skip]` off a terminal, each failure with its fix.

use std::process::{Command, Output};
use std::time::Duration;

use ipguard_sim::{Faults, SimHeroku};

use crate::service::{Org, desired, range};

const CHECKS: [&str; 13] = [
    "config",
    "heroku",
    "desired ranges",
    "token",
    "profiles",
    "profile read",
    "integration user's profile",
    "self-lock-out interlock",
    "deploy permission",
    "broad ranges",
    "ip enforcement",
    "app ip relaxation",
    // the summary
    "checks:",
];

async fn check(org: &Org, args: &[&str], extra: &[(&'static str, &str)]) -> Output {
    let mut vars: Vec<(String, String)> = org
        .vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ipguard"))
            .arg("check")
            .args(args)
            .env_clear()
            .envs(vars)
            .output()
            .expect("run ipguard check")
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line of check `name`; panics (showing everything) when absent.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.split_once("] ")
                .is_some_and(|(_, rest)| rest.starts_with(&format!("{name} — ")))
        })
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
}

/// Every managed profile already holds the desired ranges.
fn in_sync(org: &Org) {
    for profile in [
        "Admin",
        "Custom%3A Support",
        "Custom%3A Integration",
        "Standard",
    ] {
        org.sim.set_login_ip_ranges(profile, desired());
    }
}

#[tokio::test]
async fn all_good_exits_0_with_every_check_ok() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), CHECKS.len(), "one line per check:\n{text}");
    for (line, name) in lines.iter().zip(CHECKS) {
        if name == "checks:" {
            assert!(line.contains("none failed, 0 warning(s)"), "{text}");
        } else {
            assert!(
                line.starts_with(&format!("[ok] {name} — ")),
                "{line}\n{text}"
            );
        }
    }
    assert!(line(&text, "heroku").contains("203.0.113.10, 203.0.113.11"));
    assert!(line(&text, "deploy permission").contains("Succeeded"));
    assert!(line(&text, "ip enforcement").contains("is off"));
    assert!(line(&text, "app ip relaxation").contains("`IPGuard`: IP relaxation Enforce"));
    // the doctor only validated: a checkOnly deploy, nothing applied
    let deploys = org.sim.deploys();
    assert_eq!(deploys.len(), 1);
    assert!(deploys[0].check_only);
}

/// The checkOnly deploy waits the way a run's deploy does (one poll loop), and a deploy
/// still going when the window closes is a failure naming its last status, not a hang.
#[tokio::test]
async fn a_check_only_deploy_outlasting_the_window_names_its_last_status() {
    let org = Org::start(&[]).await;
    org.sim
        .set_deploy_timing(Duration::from_millis(100), Duration::from_secs(60));
    let out = check(&org, &[], &[("IPGUARD_DEPLOY_TIMEOUT", "2s")]).await;
    let text = stdout(&out);
    let deploy = line(&text, "deploy permission");
    assert!(deploy.starts_with("[FAIL]"), "{text}");
    assert!(deploy.contains("was still InProgress after 2s"), "{deploy}");
    assert!(org.sim.deploys().iter().all(|d| d.check_only));
}

#[tokio::test]
async fn a_drifted_org_passes_with_the_lock_out_warning() {
    // the default org: Support lacks the space's IPs, Integration allows only one of the two
    let org = Org::start(&[]).await;
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "warnings do not fail:\n{text}");
    let warning = line(&text, "integration user's profile");
    assert!(warning.starts_with("[warn]"), "{text}");
    assert!(
        warning.contains("Custom%3A Integration (lacks 203.0.113.11)"),
        "{warning}"
    );
    assert!(warning.contains("Custom%3A Support (lacks 203.0.113.10–203.0.113.11)"));
    assert!(warning.contains("ip restricted"));
    assert!(warning.contains("Fix: ") && warning.contains("Login IP Ranges"));
    assert!(line(&text, "profile read").contains("not yet"));
    assert!(line(&text, "deploy permission").contains("the current plan (4 profile(s))"));
    assert!(
        org.sim.login_ip_ranges("Admin").unwrap().is_empty(),
        "nothing applied"
    );
}

#[tokio::test]
async fn an_unapproved_user_fails_the_token_with_both_causes_in_the_fix() {
    let org = Org::start(&[]).await;
    org.sim.set_faults(Faults {
        user_approved: false,
        ..Faults::default()
    });
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let token = line(&text, "token");
    assert!(token.starts_with("[FAIL]"), "{text}");
    assert!(
        token.contains("user hasn't approved this consumer"),
        "{token}"
    );
    // both causes Salesforce gives this answer for (issue 14)
    assert!(
        token.contains("Fix: ")
            && token.contains("not pre-authorized")
            && token.contains("IPGuard_Integration")
            && token.contains("SALESFORCE_USERNAME"),
        "{token}"
    );
    assert!(
        line(&text, "heroku").starts_with("[ok]"),
        "independent of the token"
    );
    for name in ["profiles", "deploy permission", "app ip relaxation"] {
        assert!(
            line(&text, name).starts_with("[skip]") && line(&text, name).contains("see token"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_misspelled_profile_gets_the_listed_full_name() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    let out = check(&org, &[], &[("IPGUARD_PROFILES", "Admin,Custom: Support")]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let profiles = line(&text, "profiles");
    assert!(profiles.starts_with("[FAIL]"), "{text}");
    assert!(
        profiles.contains("for `Custom: Support` use `Custom%3A Support`"),
        "{profiles}"
    );
    // the known one is still read and checked
    assert!(line(&text, "profile read").starts_with("[ok]"), "{text}");
}

#[tokio::test]
async fn a_broad_range_is_flagged_with_the_exact_policy_fix() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    let mut ranges = desired();
    ranges.push(range("0.0.0.0", "255.255.255.255"));
    org.sim.set_login_ip_ranges("Custom%3A Support", ranges);
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let broad = line(&text, "broad ranges");
    assert!(broad.starts_with("[FAIL]"), "{text}");
    assert!(
        broad.contains("Custom%3A Support: 0.0.0.0–255.255.255.255"),
        "{broad}"
    );
    assert!(broad.contains("IPGUARD_POLICY=exact"), "{broad}");
}

#[tokio::test]
async fn an_ip_restricted_integration_user_gets_the_manual_fix() {
    let org = Org::start(&[]).await;
    org.sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let token = line(&text, "token");
    assert!(token.starts_with("[FAIL]"), "{text}");
    assert!(token.contains("invalid_grant: ip restricted"), "{token}");
    assert!(
        token.contains("Login IP Ranges, add the Private Space's outbound IPs"),
        "{token}"
    );
}

#[tokio::test]
async fn a_nat_not_enabled_fails_heroku_and_skips_what_needs_it() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    org.sim.set_heroku(SimHeroku {
        state: "disabled".into(),
        ..ipguard_sim::SimConfig::new(String::new()).heroku
    });
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let heroku = line(&text, "heroku");
    assert!(heroku.starts_with("[FAIL]"), "{text}");
    assert!(heroku.contains("NAT state is `disabled`"), "{heroku}");
    assert!(heroku.contains("Fix: "), "{heroku}");
    assert!(
        line(&text, "desired ranges").starts_with("[skip]"),
        "{text}"
    );
    assert!(
        line(&text, "deploy permission").starts_with("[skip]"),
        "{text}"
    );
    // the rest still runs
    assert!(line(&text, "token").starts_with("[ok]"), "{text}");
    assert!(line(&text, "broad ranges").starts_with("[ok]"), "{text}");
}

#[tokio::test]
async fn ip_relaxation_and_every_request_enforcement_are_read_from_the_org() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    org.sim.set_enforce_ip_ranges_every_request(true);
    org.sim.set_external_client_app("IPGuard", Some("Bypass"));
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "ip enforcement").starts_with("[ok]"), "{text}");
    assert!(line(&text, "ip enforcement").contains("is on"), "{text}");
    let app = line(&text, "app ip relaxation");
    assert!(
        app.starts_with("[FAIL]") && app.contains("`Bypass`"),
        "{text}"
    );
    assert!(app.contains("Enforce IP restrictions"), "{app}");
    // another app name that the org does not have is skipped, not failed
    let out = check(&org, &["--app", "Other"], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let app = line(&text, "app ip relaxation");
    assert!(
        app.starts_with("[skip]") && app.contains("`Other`"),
        "{text}"
    );
    // an org that still runs ipguard through a legacy connected app
    org.sim.set_connected_app("IPGuard_Legacy", Some("BYPASS"));
    let out = check(&org, &["--app", "IPGuard_Legacy"], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let app = line(&text, "app ip relaxation");
    assert!(
        app.starts_with("[FAIL]") && app.contains("connected app") && app.contains("`BYPASS`"),
        "{text}"
    );
    org.sim.set_connected_app("IPGuard_Legacy", Some("ENFORCE"));
    let out = check(&org, &["--app", "IPGuard_Legacy"], &[]).await;
    let text = stdout(&out);
    assert!(
        line(&text, "app ip relaxation").starts_with("[ok]"),
        "{text}"
    );
}

#[tokio::test]
async fn app_grants_are_expanded_and_each_door_says_whether_it_is_guarded() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    let extra = [
        ("IPGUARD_PROFILES", "@app:IPGuard,Admin"),
        ("IPGUARD_SIDE_DOORS", "every-request"),
    ];
    let out = check(&org, &[], &extra).await;
    let text = stdout(&out);
    let grants = line(&text, "app grants");
    assert!(
        grants.starts_with("[ok]")
            && grants.contains("Custom%3A Integration (app IPGuard, granted to the profile)"),
        "{text}"
    );
    assert!(
        line(&text, "config").contains("the profiles of app(s) IPGuard"),
        "{text}"
    );
    assert!(
        line(&text, "ip enforcement")
            .contains("ipguard guards it (IPGUARD_SIDE_DOORS has every-request)"),
        "{text}"
    );
    assert!(
        line(&text, "app ip relaxation")
            .contains("not guarded (add app-relaxation to IPGUARD_SIDE_DOORS"),
        "{text}"
    );
    // Without View Setup and Configuration the expansion fails with the permission to grant.
    org.sim.set_audit_trail_readable(false);
    let out = check(&org, &[], &extra).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let grants = line(&text, "app grants");
    assert!(
        grants.starts_with("[FAIL]") && text.contains("View Setup and Configuration"),
        "{text}"
    );
}

#[tokio::test]
async fn a_broken_configuration_lists_every_problem_and_stops() {
    let org = Org::start(&[]).await;
    let out = check(
        &org,
        &[],
        &[("IPGUARD_POLICY", "loose"), ("SALESFORCE_CLIENT_ID", " ")],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "config").starts_with("[FAIL]"), "{text}");
    assert!(text.contains("    IPGUARD_POLICY:") && text.contains("    SALESFORCE_CLIENT_ID:"));
    assert!(!text.contains("heroku —"), "stops after config:\n{text}");
    assert_eq!(org.sim.count("token"), 0);
}

#[tokio::test]
async fn the_simulated_answers_to_these_reads_are_valid_metadata() {
    use ipguard::salesforce::metadata::read_metadata_of_body;
    use ipguard::salesforce::soap::request_envelope;
    use secrecy::ExposeSecret;

    let org = Org::start(&[]).await;
    org.sim.set_connected_app("IPGuard_Legacy", Some("ENFORCE"));
    let config = org.config();
    let parts =
        ipguard::app::Parts::build(&config, &config.orgs[0], &[], crate::service::fast_retry())
            .unwrap();
    let (http, client) = (parts.http, parts.client);
    let session = client.session().await.unwrap();
    let url = format!("{}/services/Soap/m/66.0", org.sim.base_url());
    let mut answers = Vec::new();
    for (kind, name) in [
        ("SecuritySettings", "Security"),
        ("ExtlClntAppOauthConfigurablePolicies", "IPGuard_oauthPlcy"),
        ("ExtlClntAppOauthConfigurablePolicies", "Unknown_oauthPlcy"),
        ("ConnectedApp", "IPGuard_Legacy"),
    ] {
        let body = request_envelope(
            session.access_token.expose_secret(),
            &read_metadata_of_body(kind, &[name]),
        );
        let response = http
            .post(&url)
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "\"\"")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{kind} {name}");
        answers.push(response.text().await.unwrap());
    }
    assert!(answers[0].contains("<enforceIpRangesEveryRequest>false<"));
    assert!(answers[1].contains("<ipRelaxationPolicyType>Enforce<"));
    // An unknown name reads back as an empty record, as the sim answers for profiles (the
    // schema would want `externalClientApplication` in it: that one is not validated).
    assert!(answers[2].contains("<records xsi:type=\"ExtlClntAppOauthConfigurablePolicies\"/>"));
    assert!(answers[3].contains("<ipRelaxation>ENFORCE<"));
    crate::schema::assert_all_valid(&[&answers[0], &answers[1], &answers[3]]);
}

/// The doctor says what the interlock will hold as ipguard's own way in: the token's login
/// and the NAT IPs when LoginHistory is readable, and "partial" (NAT IPs only) when it is not
/// (docs/contract.md §5 rule 10).
#[tokio::test]
async fn the_interlock_line_says_whether_the_check_is_full_or_partial() {
    let org = Org::start(&[]).await;
    in_sync(&org);
    let text = stdout(&check(&org, &[], &[]).await);
    let full = line(&text, "self-lock-out interlock");
    assert!(full.starts_with("[ok]"), "{text}");
    assert!(
        full.contains("the space's NAT IPs 203.0.113.10, 203.0.113.11"),
        "{full}"
    );
    assert!(full.contains("this token's login from"), "{full}");

    org.sim.set_login_history_readable(false);
    let out = check(&org, &[], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "a warning only:\n{text}");
    let partial = line(&text, "self-lock-out interlock");
    assert!(partial.starts_with("[warn]"), "{text}");
    assert!(
        partial.contains("partial") && partial.contains("NAT IPs only"),
        "{partial}"
    );
    assert!(partial.contains("LoginHistory"), "{partial}");
}
