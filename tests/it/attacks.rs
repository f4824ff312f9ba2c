//! Forged and hostile requests over HTTP: each is refused and nothing is recorded.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::service::{ADMIN_TOKEN, AUDIENCE, ISSUER, OM_TOKEN, Org, http};

/// The key our forged-but-correct tokens are signed with (configured as a second event cert).
fn event_keys() -> &'static ipguard::keygen::KeyMaterial {
    static KEYS: OnceLock<ipguard::keygen::KeyMaterial> = OnceLock::new();
    KEYS.get_or_init(|| ipguard::keygen::generate("ipguard-events-test", 2).unwrap())
}

/// An attacker's own key pair.
fn attacker_keys() -> &'static ipguard::keygen::KeyMaterial {
    static KEYS: OnceLock<ipguard::keygen::KeyMaterial> = OnceLock::new();
    KEYS.get_or_init(|| ipguard::keygen::generate("attacker", 2).unwrap())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn good_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "integration@ipguard.example",
        "iat": now(), "nbf": now(), "exp": now() + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(header: Header, claims: &Value, key: &ipguard::keygen::KeyMaterial) -> String {
    let key = EncodingKey::from_rsa_pem(key.private_key_pem.expose_secret().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(Header::new(Algorithm::RS256), claims, event_keys())
}

fn with_claim(name: &str, value: Value) -> Value {
    let mut c = good_claims();
    c[name] = value;
    c
}

fn without_claim(name: &str) -> Value {
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove(name);
    c
}

/// A token whose header we write by hand, signed RS256 by `key`.
fn with_header(header: Value, key: &ipguard::keygen::KeyMaterial) -> String {
    let head = B64.encode(header.to_string());
    let body = B64.encode(good_claims().to_string());
    let signing_input = format!("{head}.{body}");
    let key = EncodingKey::from_rsa_pem(key.private_key_pem.expose_secret().as_bytes()).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{signing_input}.{signature}")
}

fn unsigned(alg: &str) -> String {
    let head = B64.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let body = B64.encode(good_claims().to_string());
    format!("{head}.{body}.")
}

/// HS256 with the configured certificate's bytes as the HMAC secret (the classic confusion).
fn hs256_with_public_key() -> String {
    let secret = event_keys().certificate_pem.as_bytes();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn event_body() -> String {
    json!({
        "channel": "/event/IPGuard_Profile_Change__e",
        "data": {"schema": "s", "payload": {"ProfileName__c": "Admin"},
                 "event": {"replayId": 7, "EventUuid": uuid::Uuid::new_v4().to_string()}}
    })
    .to_string()
}

async fn org_with_event_keys() -> Org {
    // The sim's callout certificate and our test key: two keys, as during a rotation.
    let mut org = Org::start(&[]).await;
    let both = format!(
        "{}\n{}",
        org.sim.event_signing_certificate(),
        event_keys().certificate_pem
    );
    org.vars.insert("EVENTS_JWT_CERTS", both);
    org
}

#[tokio::test]
async fn every_forged_event_token_is_refused_with_401() {
    let org = org_with_event_keys().await;
    let app = org.serve().await;
    let client = http();
    let url = app.url("/salesforce/events");
    let jku = with_header(
        json!({"alg": "RS256", "jku": "https://attacker.example/jwks.json"}),
        attacker_keys(),
    );
    let x5u = with_header(
        json!({"alg": "RS256", "x5u": "https://attacker.example/cert.pem"}),
        attacker_keys(),
    );
    let jwk = with_header(
        json!({"alg": "RS256", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
        attacker_keys(),
    );
    let replayed = rs256(&good_claims());
    let cases: Vec<(&str, Option<String>)> = vec![
        ("alg none", Some(unsigned("none"))),
        (
            "HS256 signed with the public key",
            Some(hs256_with_public_key()),
        ),
        (
            "RS256 by a foreign key",
            Some(sign(
                Header::new(Algorithm::RS256),
                &good_claims(),
                attacker_keys(),
            )),
        ),
        (
            "expired",
            Some(rs256(&with_claim("exp", json!(now() - 300)))),
        ),
        (
            "nbf in the future",
            Some(rs256(&with_claim("nbf", json!(now() + 300)))),
        ),
        (
            "1 h lifetime",
            Some(rs256(&with_claim("exp", json!(now() + 3600)))),
        ),
        (
            "wrong iss",
            Some(rs256(&with_claim("iss", json!("https://evil.example")))),
        ),
        (
            "wrong aud",
            Some(rs256(&with_claim("aud", json!("https://other.example")))),
        ),
        ("no exp", Some(rs256(&without_claim("exp")))),
        ("jku header", Some(jku)),
        ("x5u header", Some(x5u)),
        ("embedded jwk", Some(jwk)),
        ("malformed", Some("not.a.jwt".into())),
        ("empty bearer", Some(String::new())),
        ("no authorization", None),
    ];
    for (name, token) in cases {
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(event_body());
        if let Some(token) = &token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response
            .headers()
            .get("WWW-Authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{name}");
        if let Some(token) = token.filter(|t| t.len() > 10) {
            assert!(!body.to_string().contains(&token), "{name}: token echoed");
        }
    }
    // token in the query string instead of the header
    let response = client
        .post(format!("{url}?access_token={}", rs256(&good_claims())))
        .header("Content-Type", "application/json")
        .body(event_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "query-string token");
    // a good token works once, and only once
    for expected in [202, 401] {
        let response = client
            .post(&url)
            .header("Authorization", format!("Bearer {replayed}"))
            .header("Content-Type", "application/json")
            .body(event_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "replayed jti");
    }
    let metrics = app.service.metrics.render();
    assert!(
        metrics.contains("ipguard_jwt_rejections_total{reason=\"replayed\"} 1"),
        "{metrics}"
    );
    app.service.stop().await;
}

#[tokio::test]
async fn a_good_token_with_a_bad_body_is_a_400() {
    let org = org_with_event_keys().await;
    let app = org.serve().await;
    let response = http()
        .post(app.url("/salesforce/events"))
        .header("Authorization", format!("Bearer {}", rs256(&good_claims())))
        .header("Content-Type", "application/json")
        .body("{\"channel\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    app.service.stop().await;
}

async fn post_xml(url: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let response = http()
        .post(url)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn hostile_outbound_messages_are_refused_and_nothing_is_recorded() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    let url = app.url("/salesforce/outbound-messages");
    let billion_laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
        <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>";
    let external =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    for (name, body, status) in [
        ("not xml", "hello".to_string(), 400),
        ("billion laughs", billion_laughs.to_string(), 400),
        ("external entity", external.to_string(), 400),
        ("deep nesting", deep, 400),
        (
            "wrong org",
            org.sim
                .outbound_message_body("00D000000000062EAA", &["04l1I000000fztEQAQ".to_string()]),
            403,
        ),
    ] {
        let (got, text) = post_xml(&url, body).await;
        assert_eq!(got, status, "{name}: {text}");
        assert!(
            text.contains("Fault"),
            "{name}: a SOAP fault is expected: {text}"
        );
        assert!(!text.contains("<Ack>true</Ack>"), "{name}");
    }
    let oversized = vec![b'a'; 2 * 1024 * 1024 + 1];
    let (got, _) = post_xml(&url, oversized).await;
    assert_eq!(got, 413, "oversized");
    let text = app.service.metrics.render();
    assert!(
        !text.contains("outcome=\"accepted\""),
        "nothing recorded: {text}"
    );
    app.service.stop().await;
}

#[tokio::test]
async fn the_path_token_is_required_when_configured() {
    let org = Org::start(&[("OUTBOUND_MESSAGE_TOKEN", OM_TOKEN)]).await;
    let app = org.serve().await;
    let body = org
        .sim
        .outbound_message_body(&org.sim.org_id(), &["04l1I000000fztEQAQ".to_string()]);
    let (plain, _) = post_xml(&app.url("/salesforce/outbound-messages"), body.clone()).await;
    assert_eq!(plain, 404);
    let (wrong, _) = post_xml(
        &app.url("/salesforce/outbound-messages/om-path-token-0123456780"),
        body.clone(),
    )
    .await;
    assert_eq!(wrong, 404);
    let (right, text) = post_xml(
        &app.url(&format!("/salesforce/outbound-messages/{OM_TOKEN}")),
        body,
    )
    .await;
    assert_eq!(right, 200, "{text}");
    assert!(text.contains("<Ack>true</Ack>"));
    app.service.stop().await;
}

#[tokio::test]
async fn store_outage_is_a_503_fault_and_never_an_ack() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    app.service.store.close().await;
    let body = org
        .sim
        .outbound_message_body(&org.sim.org_id(), &["04l1I000000fztEQAQ".to_string()]);
    let (status, text) = post_xml(&app.url("/salesforce/outbound-messages"), body).await;
    assert_eq!(status, 503);
    assert!(text.contains("soapenv:Server"), "{text}");
    assert!(!text.contains("<Ack>true</Ack>"));
    let ready = http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    app.service.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_token_and_unknown_paths_are_json_404() {
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    let client = http();
    for path in ["/status", "/metrics"] {
        let r = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = client
            .get(app.url(path))
            .bearer_auth("admin-token-0123456789abcdeX")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} wrong token");
        let r = client
            .get(app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().contains_key("x-request-id"));
    }
    let r = client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let r = client
        .get(app.url("/salesforce/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(app.url("/reconcile?wait=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["run"].is_i64(), "{body}");
    assert!(body["outcome"].is_string(), "{body}");
    let _ = Duration::ZERO;
    app.service.stop().await;
}

/// A refused token does not cost the caller its connection when the body is small: ipguard
/// reads and drops it, so actix keeps the connection alive (an unread body makes actix close
/// it, which turned every forged request of a flood into a new TCP connection).
#[tokio::test]
async fn a_forged_token_with_a_small_body_keeps_the_connection_alive() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let org = Org::start(&[]).await;
    let app = org.serve().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body =
        r#"{"channel":"/event/X","data":{"schema":"s","payload":{},"event":{"replayId":1}}}"#;
    for attempt in 1..=2 {
        let request = format!(
            "POST /salesforce/events HTTP/1.1\r\nHost: {address}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            unsigned("none"),
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // read one whole response: headers, then Content-Length bytes of body
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("a response")
                .unwrap();
            assert!(n > 0, "attempt {attempt}: the server closed the connection");
            response.extend_from_slice(&chunk[..n]);
            if let Some(i) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 401"),
            "attempt {attempt}: {head}"
        );
        assert!(
            !head.contains("connection: close"),
            "attempt {attempt}: {head}"
        );
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        while response.len() < head_end + length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "attempt {attempt}: body cut short");
            response.extend_from_slice(&chunk[..n]);
        }
    }
    app.service.stop().await;
}
