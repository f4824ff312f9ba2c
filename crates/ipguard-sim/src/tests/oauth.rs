//! OAuth 2.0 JWT bearer: the token endpoint's successes and refusals, as Salesforce words them.

use super::*;

#[tokio::test]
async fn token_success_has_salesforce_shape() {
    let sim = start(config()).await;
    let (status, body) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let parsed: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = parsed.keys().map(String::as_str).collect();
    let mut expected = ["access_token", "scope", "instance_url", "id", "token_type"];
    expected.sort();
    assert_eq!(keys, expected, "no refresh_token, signature or issued_at");
    assert!(
        body.starts_with("{\"access_token\":\"00D5g000004FAKE!"),
        "{body}"
    );
    assert_eq!(parsed["instance_url"], sim.base_url());
    assert_eq!(parsed["token_type"], "Bearer");
    let id = parsed["id"].as_str().unwrap();
    let prefix = format!("{}/id/{}/005", sim.base_url(), sim.org_id());
    assert!(id.starts_with(&prefix), "{id}");
    assert_eq!(
        sim.calls(),
        [Call {
            operation: "token".into(),
            outcome: "ok".into()
        }]
    );
    sim.stop().await;
}

#[tokio::test]
async fn token_errors_match_salesforce() {
    let sim = start(config()).await;
    let with = |field: &str, value: Value| {
        let mut claims = good_claims();
        claims[field] = value;
        claims
    };
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(b"shared").unwrap(),
    )
    .unwrap();
    let cases = [
        (
            sign(other_key(), &good_claims()),
            "invalid_grant",
            "invalid assertion",
        ),
        (hs256, "invalid_grant", "invalid assertion"),
        ("not.a.jwt".to_owned(), "invalid_grant", "invalid assertion"),
        (
            sign(key(), &with("iss", json!("3MVGsomeoneElse"))),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            sign(key(), &with("aud", json!("https://acme.my.salesforce.com"))),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            sign(key(), &with("exp", json!(now() - 30))),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            sign(key(), &with("exp", json!(now() + 3600))),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            sign(key(), &with("sub", json!("someone@else.example"))),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
    ];
    for (assertion, error, description) in cases {
        let (status, body) = token_request(&sim, &assertion).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{description}: {body}");
        assert_eq!(
            body,
            format!("{{\"error\":\"{error}\",\"error_description\":\"{description}\"}}")
        );
    }
    // Salesforce's documented example sends exp as a string; test.salesforce.com is fine too.
    let mut claims = good_claims();
    claims["exp"] = json!((now() + 60).to_string());
    claims["aud"] = json!("https://test.salesforce.com");
    assert_eq!(
        token_request(&sim, &sign(key(), &claims)).await.0,
        StatusCode::OK
    );
    // A request that is not the JWT bearer grant.
    let response = client()
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#
    );
    sim.stop().await;
}

#[tokio::test]
async fn unapproved_user_is_refused() {
    let sim = start(config()).await;
    sim.set_faults(Faults {
        user_approved: false,
        ..Faults::default()
    });
    let (status, body) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"error":"invalid_grant","error_description":"user hasn't approved this consumer"}"#
    );
    sim.set_faults(Faults::default());
    login(&sim).await;
    sim.stop().await;
}

#[tokio::test]
async fn login_outside_the_integration_profile_ranges_is_ip_restricted() {
    let sim = start(config()).await;
    login(&sim).await;
    // An admin drops the space's IP from the integration user's profile: locked out.
    sim.set_login_ip_ranges(
        DEFAULT_INTEGRATION_PROFILE,
        vec![range("198.51.100.1", "198.51.100.1")],
    );
    let (status, body) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"error":"invalid_grant","error_description":"ip restricted"}"#
    );
    assert_eq!(sim.calls().last().unwrap().outcome, "ip restricted");
    // A range containing the caller lets it in again; so does a profile without ranges.
    sim.set_login_ip_ranges(
        DEFAULT_INTEGRATION_PROFILE,
        vec![range("203.0.113.0", "203.0.113.255")],
    );
    login(&sim).await;
    sim.set_login_ip_ranges(DEFAULT_INTEGRATION_PROFILE, Vec::new());
    login(&sim).await;
    assert_eq!(sim.count("token"), 4);
    sim.stop().await;
}
