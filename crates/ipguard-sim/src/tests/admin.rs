//! The sim's own admin API (`/sim/…`) and its configuration.

use super::*;

#[tokio::test]
async fn admin_api_edits_profiles_and_sets_faults() {
    let sim = start(config()).await;
    let http = client();
    let url = sim.base_url();
    let response = http
        .put(format!(
            "{url}/sim/profiles/Custom%253A%20Support/login-ip-ranges"
        ))
        .json(&json!([{"start": "192.0.2.1", "end": "192.0.2.9", "description": "VPN"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&[range("192.0.2.1", "192.0.2.9")])
    );
    let response = http
        .put(format!("{url}/sim/profiles/Admin/login-ip-ranges"))
        .json(&json!([{"start": "192.0.2.9", "end": "192.0.2.1"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let state: Value = http
        .get(format!("{url}/sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["org_id"], DEFAULT_ORG_ID);
    assert_eq!(state["profiles"][1]["full_name"], "Custom%3A Support");
    assert_eq!(
        state["profiles"][1]["login_ip_ranges"],
        json!([{"start": "192.0.2.1", "end": "192.0.2.9", "description": "VPN"}])
    );

    let response = http
        .put(format!("{url}/sim/faults"))
        .json(&json!({"next_failures": ["http500"], "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The rest of Faults kept its healthy defaults (user_approved).
    login(&sim).await;
    let bad = http
        .put(format!("{url}/sim/faults"))
        .body("{\"next_failures\": [\"meteor\"]}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let calls: Value = http
        .get(format!("{url}/sim/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        calls,
        json!([
            {"operation": "token", "outcome": "http_500"},
            {"operation": "token", "outcome": "ok"}
        ])
    );
    sim.clear_calls();
    assert!(sim.calls().is_empty());
    sim.stop().await;
}

#[test]
fn faults_default_is_a_healthy_org_and_round_trips_as_json() {
    let faults = Faults::default();
    assert!(faults.user_approved);
    assert_eq!(faults.deploy_outcome, DeployOutcome::Succeed);
    let custom = Faults {
        latency: Duration::from_millis(40),
        next_failures: vec![FailureKind::RequestLimitExceeded],
        session_expires_after_calls: Some(3),
        deploy_outcome: DeployOutcome::Fail(vec!["boom".into()]),
        user_approved: false,
        heroku_failures: vec![429],
        outage: Some(Outage {
            kind: FailureKind::Http503,
            duration: Duration::from_secs(30),
        }),
    };
    let text = serde_json::to_string(&custom).unwrap();
    assert_eq!(serde_json::from_str::<Faults>(&text).unwrap(), custom);
    assert_eq!(
        serde_json::from_str::<Faults>("{}").unwrap(),
        Faults::default()
    );
    let stuck: Faults = serde_json::from_str(r#"{"deploy_outcome":"stuck"}"#).unwrap();
    assert_eq!(stuck.deploy_outcome, DeployOutcome::Stuck);
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start() {
    let mut bad_cert = config();
    bad_cert.certificate_pem = "not a certificate".into();
    let error = SimOrg::start(bad_cert, 0).await.err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let mut bad_id = config();
    bad_id.org_id = "00D5g000004FAKEEAA".into();
    assert!(SimOrg::start(bad_id, 0).await.is_err());
    let mut short_id = config();
    short_id.org_id = "00D5g000004FAKE".into();
    let sim = start(short_id).await;
    assert_eq!(sim.org_id(), DEFAULT_ORG_ID);
    sim.stop().await;
}
