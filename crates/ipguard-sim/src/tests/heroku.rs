//! The Heroku Platform API's space NAT.

use super::*;

#[tokio::test]
async fn heroku_nat_requires_the_token_and_knows_one_space() {
    let sim = start(config()).await;
    let nat = |space: &str, token: Option<&str>| {
        let mut request = client().get(format!("{}/spaces/{space}/nat", sim.base_url()));
        request = request.header("Accept", "application/vnd.heroku+json; version=3");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = nat("acme-space", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":"unauthorized","message":"Invalid credentials provided."}"#
    );
    let response = nat("acme-space", Some("wrong")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = nat("other-space", Some(DEFAULT_HEROKU_TOKEN))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":"not_found","message":"Couldn't find that space."}"#
    );
    let response = nat("acme-space", Some(DEFAULT_HEROKU_TOKEN)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Map<String, Value> = response.json().await.unwrap();
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(keys, ["created_at", "sources", "state", "updated_at"]);
    assert_eq!(body["state"], "enabled");
    assert_eq!(body["sources"], json!(["203.0.113.10", "203.0.113.11"]));
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).is_ok(),
        "{body:?}"
    );
    for state in ["updating", "disabled"] {
        sim.set_heroku(SimHeroku {
            state: state.into(),
            sources: Vec::new(),
            ..config().heroku
        });
        let body: Value = nat("acme-space", Some(DEFAULT_HEROKU_TOKEN))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["state"], state);
        assert_eq!(body["sources"], json!([]));
    }
    let outcomes: Vec<String> = sim.calls().into_iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            "unauthorized",
            "unauthorized",
            "not_found",
            "ok",
            "ok",
            "ok"
        ]
    );
    assert_eq!(sim.count("heroku.nat"), 6);
    sim.stop().await;
}
