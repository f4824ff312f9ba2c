//! The `ipguard` binary as a user runs it: arguments, environment, output and exit codes.

use std::process::{Command, Output};

use serde_json::Value;

use crate::service::{Org, range};

/// Runs the `ipguard` binary with exactly `vars` as its environment.
pub fn ipguard(args: &[&str], vars: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipguard"))
        .args(args)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run ipguard")
}

/// stdout then stderr, as one text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn ranges_json_from_static_sources() {
    let out = ipguard(
        &["ranges", "--json"],
        &[(
            "IPGUARD_SOURCE_IPS",
            "52.1.2.4, 52.1.2.3,10.0.0.0/28".into(),
        )],
    );
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["sources"],
        serde_json::json!(["52.1.2.4/32", "52.1.2.3/32", "10.0.0.0/28"])
    );
    assert_eq!(
        doc["ranges"],
        serde_json::json!([
            {"start": "10.0.0.0", "end": "10.0.0.15", "description": "ipguard: IPGUARD_SOURCE_IPS"},
            {"start": "52.1.2.3", "end": "52.1.2.4", "description": "ipguard: IPGUARD_SOURCE_IPS"}
        ])
    );
}

#[test]
fn bad_configuration_is_reported_all_at_once_and_exits_1() {
    let out = ipguard(
        &["plan"],
        &[
            ("IPGUARD_SOURCE_IPS", "52.1.2.300".into()),
            ("IPGUARD_POLICY", "loose".into()),
            ("HEROKU_API_TOKEN", "secret-heroku-token-value".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out);
    for variable in [
        "IPGUARD_SOURCE_IPS",
        "IPGUARD_POLICY",
        "SALESFORCE_CLIENT_ID",
        "IPGUARD_PROFILES",
        "HEROKU_SPACE",
    ] {
        assert!(err.contains(variable), "{variable} not named in:\n{err}");
    }
    assert!(
        !err.contains("secret-heroku-token-value"),
        "secret printed:\n{err}"
    );
}

#[test]
fn keygen_writes_a_key_pair_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = ipguard(
        &["keygen", "--out", out_dir, "--common-name", "acme-ipguard"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let key = dir.path().join("ipguard.key");
    let cert = std::fs::read_to_string(dir.path().join("ipguard.crt")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = ipguard(&["keygen", "--out", out_dir], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("ipguard.key"));
}

#[tokio::test]
async fn plan_and_apply_against_the_simulated_org() {
    let org = Org::start(&[]).await;
    let vars: Vec<(&str, String)> = org.vars.iter().map(|(k, v)| (*k, v.clone())).collect();
    let run = |args: &'static [&'static str]| {
        let vars = vars.clone();
        tokio::task::spawn_blocking(move || ipguard(args, &vars))
    };
    let plan = run(&["plan"]).await.unwrap();
    assert_eq!(plan.status.code(), Some(2), "drift: {}", text(&plan));
    assert!(text(&plan).contains("+ 203.0.113.10 – 203.0.113.11"));
    let json = run(&["plan", "--json", "--profile", "Admin"])
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["drift"], true);
    assert_eq!(doc["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(doc["profiles"][0]["name"], "Admin");
    let check = run(&["apply", "--check-only"]).await.unwrap();
    assert_eq!(check.status.code(), Some(2), "planned: {}", text(&check));
    assert!(org.sim.deploys()[0].check_only);
    let apply = run(&["apply"]).await.unwrap();
    assert_eq!(apply.status.code(), Some(0), "{}", text(&apply));
    assert!(text(&apply).contains("outcome: remediated"));
    let plan = run(&["plan"]).await.unwrap();
    assert_eq!(plan.status.code(), Some(0), "in sync: {}", text(&plan));
    // lock the integration user out: apply says so with exit 3
    org.sim.set_login_ip_ranges(
        "Custom%3A Integration",
        vec![range("192.0.2.1", "192.0.2.1")],
    );
    let locked = run(&["apply"]).await.unwrap();
    assert_eq!(locked.status.code(), Some(3), "{}", text(&locked));
    assert!(text(&locked).contains("ip restricted"));
}

#[tokio::test]
async fn history_lists_the_runs_of_the_store() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.wait_for_runs(std::time::Duration::from_secs(10), |r| {
        r.iter().any(|x| x.outcome.is_some())
    })
    .await;
    app.service.stop().await;
    let vars = vec![("DATABASE_URL", org.vars["DATABASE_URL"].clone())];
    let out = tokio::task::spawn_blocking(move || ipguard(&["history", "--json"], &vars))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &rows.as_array().unwrap()[0];
    assert_eq!(first["trigger"], "startup");
    assert_eq!(first["outcome"], "remediated");
    assert!(first["deploy_id"].is_string());
    for field in ["id", "started_at", "finished_at", "profiles", "error"] {
        assert!(first.get(field).is_some(), "{field} missing");
    }
}
