//! Over real HTTP: a small actix-web receiver stands in for ipguard and answers each
//! request as the test scripts it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use actix_web::{App, HttpRequest, HttpServer, web};
use jsonwebtoken::{DecodingKey, Validation};
use x509_parser::public_key::PublicKey;

use super::*;
use crate::SimConfig;
use ipguard_wire::xml::{Element, XSI_NS};

fn key() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate(EVENT_SIGNING_CERT_NAME, 30).expect("keygen"))
}

async fn sim_with(event_signing_key: Option<KeyMaterial>) -> SimOrg {
    let config = SimConfig {
        event_signing_key,
        ..SimConfig::new(key().certificate_pem.clone())
    };
    SimOrg::start(config, 0).await.expect("sim starts")
}

async fn sim() -> SimOrg {
    sim_with(Some(key().clone())).await
}

/// The repository's real samples (tests/fixtures/salesforce/), two levels above this crate.
fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ack() -> String {
    fixture("response-ack-true.xml")
}

fn fast(attempts: u32) -> SendRetry {
    SendRetry {
        attempts,
        base: Duration::from_millis(5),
    }
}

fn outcomes(sim: &SimOrg, operation: &str) -> Vec<String> {
    sim.calls()
        .into_iter()
        .filter(|c| c.operation == operation)
        .map(|c| c.outcome)
        .collect()
}

#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Respond = dyn Fn(usize, &Received) -> (u16, String) + Send + Sync;

/// Plays ipguard: records every request and answers request number `i` (0-based) with
/// `respond(i, request)`.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start(
        respond: impl Fn(usize, &Received) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let respond: Arc<Respond> = Arc::new(respond);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/salesforce/hook", listener.local_addr().unwrap());
        let log = seen.clone();
        let server = HttpServer::new(move || {
            let log = log.clone();
            let respond = respond.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let log = log.clone();
                let respond = respond.clone();
                async move {
                    let received = Received {
                        headers: req
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (n.to_string(), v.to_str().unwrap_or_default().to_owned())
                            })
                            .collect(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                        at: Instant::now(),
                    };
                    let index = {
                        let mut log = log.lock().unwrap();
                        log.push(received.clone());
                        log.len() - 1
                    };
                    let (status, text) = respond(index, &received);
                    actix_web::HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).unwrap(),
                    )
                    .content_type("text/xml; charset=utf-8")
                    .body(text)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url, seen, handle }
    }

    fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

fn notification_ids() -> Vec<String> {
    vec![
        "04l5g00000AbCdEQAQ".to_owned(),
        "04l5g00000XyZ12AAA".to_owned(),
    ]
}

#[test]
fn backoff_doubles_from_the_base_and_stops_doubling() {
    let retry = SendRetry::default();
    assert_eq!((retry.attempts, retry.base), (5, Duration::from_millis(50)));
    let delays: Vec<u128> = (1..=10).map(|a| retry.delay_after(a).as_millis()).collect();
    assert_eq!(
        delays,
        [50, 100, 200, 400, 800, 1600, 3200, 6400, 6400, 6400]
    );
}

#[tokio::test]
async fn outbound_message_is_retried_until_acked() {
    let sim = sim().await;
    let nacks: Vec<(u16, String)> = vec![
        (500, "Internal Server Error".to_owned()),
        (500, fixture("response-soap-fault-template.xml")),
        (200, fixture("response-soap-fault-template.xml")),
        (200, ack().replace("<Ack>true</Ack>", "<Ack>false</Ack>")),
        (
            200,
            ack().replace(OUTBOUND_NS, "http://soap.sforce.com/2006/04/metadata"),
        ),
        (200, String::new()),
    ];
    let script = nacks.clone();
    let receiver =
        Receiver::start(move |i, _| script.get(i).cloned().unwrap_or_else(|| (200, ack()))).await;
    let retry = fast(10);

    let report = sim
        .send_outbound_message(&receiver.url, &notification_ids(), retry)
        .await;

    let tries = u32::try_from(nacks.len()).unwrap() + 1;
    assert!(report.delivered, "{report:?}");
    assert_eq!(report.attempts, tries);
    assert_eq!(report.last_status, Some(200));
    assert_eq!(report.bodies.len(), nacks.len() + 1);
    assert!(report.bodies.iter().all(|b| *b == report.bodies[0]));
    let received = receiver.received();
    assert_eq!(received.len(), nacks.len() + 1);
    assert!(received.iter().all(|r| r.body == report.bodies[0]));
    assert_eq!(
        outcomes(&sim, "send.outbound_message"),
        [
            "http_500", "http_500", "nack", "nack", "nack", "nack", "ack"
        ]
    );
    // Each wait doubles: the gaps the receiver sees are at least base, 2·base, 4·base…
    for (i, pair) in received.windows(2).enumerate() {
        let gap = pair[1].at.duration_since(pair[0].at);
        let wait = retry.delay_after(u32::try_from(i).unwrap() + 1);
        assert!(gap >= wait, "gap {i}: {gap:?} < {wait:?}");
    }
    receiver.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn outbound_message_gives_up_after_the_attempts() {
    let sim = sim().await;
    let receiver =
        Receiver::start(|_, _| (503, "<html>Down for maintenance</html>".to_owned())).await;

    let report = sim
        .send_outbound_message(&receiver.url, &notification_ids(), fast(3))
        .await;

    assert!(!report.delivered);
    assert_eq!(report.attempts, 3);
    assert_eq!(report.last_status, Some(503));
    assert_eq!(receiver.received().len(), 3);
    assert_eq!(
        outcomes(&sim, "send.outbound_message"),
        ["http_503", "http_503", "http_503"]
    );
    receiver.stop().await;

    // Nobody listening: no status at all.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    sim.clear_calls();
    let report = sim
        .send_outbound_message(&closed, &notification_ids(), fast(2))
        .await;
    assert!(!report.delivered);
    assert_eq!((report.attempts, report.last_status), (2, None));
    assert_eq!(
        outcomes(&sim, "send.outbound_message"),
        ["unreachable", "unreachable"]
    );
    sim.stop().await;
}

fn child<'a>(element: &'a Element, ns: &str, name: &str) -> &'a Element {
    element
        .child(ns, name)
        .unwrap_or_else(|| panic!("no {name} in {}", element.name))
}

#[tokio::test]
async fn outbound_message_has_the_real_shape() {
    let sim = sim().await;
    let receiver = Receiver::start(|_, _| (200, ack())).await;
    let ids = notification_ids();

    let report = sim
        .send_outbound_message(&receiver.url, &ids, fast(1))
        .await;

    assert!(report.delivered, "{report:?}");
    let received = receiver.received();
    let request = &received[0];
    assert_eq!(
        request.header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    assert_eq!(request.header("soapaction"), Some("\"\""));
    let root = xml::parse(request.body.as_bytes()).expect("the body is XML");
    assert!(root.is(SOAP_ENV_NS, "Envelope"));
    let notifications = child(
        child(&root, SOAP_ENV_NS, "Body"),
        OUTBOUND_NS,
        "notifications",
    );

    // The same children, in the same order, as the real capture.
    let sample = xml::parse(fixture("request-2-contact-notifications.xml").as_bytes()).unwrap();
    let sample = child(
        child(&sample, SOAP_ENV_NS, "Body"),
        OUTBOUND_NS,
        "notifications",
    );
    let names = |e: &Element| {
        e.children
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(notifications), names(sample));

    let org_id = sim.org_id();
    assert_eq!(org_id.len(), 18);
    assert_eq!(
        notifications.child_text(OUTBOUND_NS, "OrganizationId"),
        Some(org_id.as_str())
    );
    let action = notifications.child_text(OUTBOUND_NS, "ActionId").unwrap();
    assert!(
        action.starts_with("04k") && ids::is_valid_18(action),
        "{action}"
    );
    let session = child(notifications, OUTBOUND_NS, "SessionId");
    assert!(session.is_nil() && session.text.is_empty());
    let base = sim.base_url();
    let org15 = &org_id[..15];
    assert_eq!(
        notifications.child_text(OUTBOUND_NS, "EnterpriseUrl"),
        Some(format!("{base}/services/Soap/c/66.0/{org15}").as_str())
    );
    assert_eq!(
        notifications.child_text(OUTBOUND_NS, "PartnerUrl"),
        Some(format!("{base}/services/Soap/u/66.0/{org15}").as_str())
    );
    let sobject_ns = "urn:sobject.enterprise.soap.sforce.com";
    let sent: Vec<&str> = notifications
        .children_named(OUTBOUND_NS, "Notification")
        .map(|n| {
            let user = child(n, OUTBOUND_NS, "sObject");
            assert_eq!(user.attribute(Some(XSI_NS), "type"), Some("sf:User"));
            let user_id = user.child_text(sobject_ns, "Id").unwrap();
            assert!(user_id.starts_with("005") && ids::is_valid_18(user_id));
            let profile_id = user.child_text(sobject_ns, "ProfileId").unwrap();
            assert!(profile_id.starts_with("00e") && ids::is_valid_18(profile_id));
            n.child_text(OUTBOUND_NS, "Id").unwrap()
        })
        .collect();
    assert_eq!(sent, ids);
    receiver.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn outbound_message_as_another_org_escapes_every_value() {
    let sim = sim().await;
    let receiver = Receiver::start(|_, _| (200, ack())).await;
    let org = "00D<b>&\"x'000000";
    let ids = vec!["04l<&>\"'".to_owned()];

    let report = sim
        .send_outbound_message_as(org, &receiver.url, &ids, fast(1))
        .await;

    assert!(report.delivered);
    let root = xml::parse(report.bodies[0].as_bytes()).expect("escaped XML parses");
    let notifications = child(
        child(&root, SOAP_ENV_NS, "Body"),
        OUTBOUND_NS,
        "notifications",
    );
    assert_eq!(
        notifications.child_text(OUTBOUND_NS, "OrganizationId"),
        Some(org)
    );
    let notification = child(notifications, OUTBOUND_NS, "Notification");
    assert_eq!(
        notification.child_text(OUTBOUND_NS, "Id"),
        Some(ids[0].as_str())
    );
    assert!(
        notifications
            .child_text(OUTBOUND_NS, "EnterpriseUrl")
            .unwrap()
            .ends_with("/services/Soap/c/66.0/00D<b>&\"x'00000")
    );
    receiver.stop().await;
    sim.stop().await;
}

/// The RSA public key inside a PEM certificate, as ipguard reads `EVENTS_JWT_CERTS`.
fn decoding_key(certificate_pem: &str) -> DecodingKey {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).unwrap();
    let certificate = pem.parse_x509().unwrap();
    let key_info = certificate.public_key();
    assert!(matches!(key_info.parsed(), Ok(PublicKey::RSA(_))));
    DecodingKey::from_rsa_der(&key_info.subject_public_key.data)
}

const ISSUER: &str = "00D5g000004FAKEEA4";
const AUDIENCE: &str = "https://ipguard.example/salesforce/events";
const SUBJECT: &str = "ipguard-events";

#[tokio::test]
async fn platform_events_carry_a_verifiable_jwt_and_are_retried() {
    let sim = sim().await;
    let key = decoding_key(&sim.event_signing_certificate());
    let verified: Arc<Mutex<Vec<(jsonwebtoken::Header, Value)>>> = Arc::default();
    let tokens = verified.clone();
    let receiver = Receiver::start(move |i, request| {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        let token = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        match jsonwebtoken::decode::<Value>(token, &key, &validation) {
            Ok(data) => {
                tokens.lock().unwrap().push((data.header, data.claims));
                if i == 0 {
                    (500, "busy".to_owned())
                } else {
                    (202, r#"{"accepted":2,"duplicates":0}"#.to_owned())
                }
            }
            Err(e) => (401, format!("invalid_token: {e}")),
        }
    })
    .await;
    let claims = EventClaims {
        lifetime: Duration::from_secs(90),
        ..EventClaims::new(ISSUER, AUDIENCE, SUBJECT)
    };
    let profiles = vec!["Custom%3A Support".to_owned(), "Admin".to_owned()];

    let report = sim
        .send_platform_events(&receiver.url, &profiles, &claims, fast(4))
        .await;

    assert!(report.delivered, "{report:?}");
    assert_eq!((report.attempts, report.last_status), (2, Some(202)));
    assert_eq!(outcomes(&sim, "send.platform_event"), ["http_500", "ack"]);
    let received = receiver.received();
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    // A retry resends the same events under a new token.
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(
        report.bodies,
        [received[0].body.clone(), received[1].body.clone()]
    );
    let tokens = verified.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "both tries carry a token that verifies");
    for (header, claims) in &tokens {
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(EVENT_SIGNING_CERT_NAME));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(claims["sub"], SUBJECT);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], AUDIENCE);
        let (exp, iat) = (
            claims["exp"].as_i64().unwrap(),
            claims["iat"].as_i64().unwrap(),
        );
        assert_eq!(exp - iat, 90);
        assert!(claims["nbf"].as_i64().unwrap() <= iat);
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    }
    assert_ne!(tokens[0].1["jti"], tokens[1].1["jti"]);

    let events: Vec<Value> = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(events.len(), 2);
    let mut uuids = Vec::new();
    for (event, profile) in events.iter().zip(&profiles) {
        assert_eq!(event["channel"], EVENT_CHANNEL);
        assert!(
            event["data"]["schema"]
                .as_str()
                .is_some_and(|s| s.len() == 22)
        );
        let payload = &event["data"]["payload"];
        assert_eq!(payload["ProfileName__c"], profile.as_str());
        for field in ["ChangedBy__c", "ChangedAt__c", "CreatedDate", "CreatedById"] {
            assert!(
                payload[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field}"
            );
        }
        assert!(
            payload["AuditTrailId__c"]
                .as_str()
                .unwrap()
                .starts_with("0Ym")
        );
        chrono::DateTime::parse_from_rfc3339(payload["ChangedAt__c"].as_str().unwrap()).unwrap();
        let uuid = event["data"]["event"]["EventUuid"].as_str().unwrap();
        uuids.push(uuid::Uuid::parse_str(uuid).unwrap());
    }
    assert_ne!(uuids[0], uuids[1]);
    let replay = |e: &Value| e["data"]["event"]["replayId"].as_u64().unwrap();
    assert_eq!(replay(&events[1]), replay(&events[0]) + 1);

    // Defaults: a two-minute token; without `jti` when asked; replay ids keep counting.
    let report = sim
        .send_platform_events(
            &receiver.url,
            &profiles[..1],
            &EventClaims {
                with_jti: false,
                ..EventClaims::new(ISSUER, AUDIENCE, SUBJECT)
            },
            fast(1),
        )
        .await;
    assert!(report.delivered, "{report:?}");
    let (_, claims) = verified.lock().unwrap()[2].clone();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    assert!(claims.get("jti").is_none(), "{claims}");
    let next: Vec<Value> = serde_json::from_str(&report.bodies[0]).unwrap();
    assert_eq!(replay(&next[0]), replay(&events[1]) + 1);
    receiver.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_skewed_clock_stamps_iat_nbf_and_exp_on_that_clock() {
    let sim = sim().await;
    let receiver = Receiver::start(|_, _| (202, "{}".to_owned())).await;
    for skew in [-90, 90] {
        let before = Utc::now().timestamp();
        let report = sim
            .send_platform_events(
                &receiver.url,
                &["Admin".to_owned()],
                &EventClaims {
                    clock_skew_secs: skew,
                    ..EventClaims::new(ISSUER, AUDIENCE, SUBJECT)
                },
                fast(1),
            )
            .await;
        let after = Utc::now().timestamp();
        assert!(report.delivered, "{report:?}");
        let received = receiver.received();
        let token = received
            .last()
            .and_then(|r| r.header("authorization"))
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap()
            .to_owned();
        // The receiver's clock is not the signer's: read the claims without judging time.
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        let iat = claims["iat"].as_i64().unwrap();
        assert!(
            (before + skew..=after + skew).contains(&iat),
            "skew {skew}: iat {iat} not within [{before}, {after}] + skew"
        );
        assert_eq!(claims["nbf"].as_i64(), Some(iat));
        assert_eq!(claims["exp"].as_i64(), Some(iat + 120));
    }
    receiver.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn platform_events_give_up_after_the_attempts() {
    let sim = sim().await;
    let receiver = Receiver::start(|_, _| (401, r#"{"error":"invalid_token"}"#.to_owned())).await;

    let report = sim
        .send_platform_events(
            &receiver.url,
            &["Admin".to_owned()],
            &EventClaims::new(ISSUER, AUDIENCE, SUBJECT),
            fast(3),
        )
        .await;

    assert!(!report.delivered);
    assert_eq!((report.attempts, report.last_status), (3, Some(401)));
    assert_eq!(
        report.last_reply.as_deref(),
        Some(r#"{"error":"invalid_token"}"#),
        "the refusal's body is kept"
    );
    assert_eq!(receiver.received().len(), 3);
    assert_eq!(
        outcomes(&sim, "send.platform_event"),
        ["http_401", "http_401", "http_401"]
    );
    receiver.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_signing_key_is_generated_once_when_none_is_given() {
    let sim = sim_with(None).await;
    let first = sim.event_signing_certificate();
    assert_eq!(sim.event_signing_certificate(), first);
    assert_ne!(first, key().certificate_pem);
    let (_, pem) = x509_parser::pem::parse_x509_pem(first.as_bytes()).unwrap();
    let certificate = pem.parse_x509().unwrap();
    let cn = certificate.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), EVENT_SIGNING_CERT_NAME);
    decoding_key(&first);
    sim.stop().await;
}
