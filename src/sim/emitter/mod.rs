//! What the org sends to ipguard after an admin edit: an Outbound Message (SOAP 1.1, as the
//! Flow on User sends it) and a callout carrying `IPGuard_Profile_Change__e` platform events,
//! signed with a JWT the way a Named Credential with the JWT protocol signs it.
//!
//! Both are retried until acknowledged, with exponential backoff, like Salesforce's
//! outbound-message queue (which retries for up to 24 h, at most 2 h apart) — scaled down by
//! [`SendRetry::base`] so tests run in milliseconds. Every attempt lands in the call log.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};

use super::{SimOrg, ids};
use crate::keygen::{self, KeyMaterial};
use crate::xml::{self, SOAP_ENV_NS};

/// Namespace of `notifications` and of the `notificationsResponse` ACK.
pub const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
/// Developer name of the sim's signing certificate in Setup; the JWT header's `kid`.
pub const EVENT_SIGNING_CERT_NAME: &str = "IPGuard_Callout";
/// The CometD channel of the platform event ipguard's Apex publishes.
pub const EVENT_CHANNEL: &str = "/event/IPGuard_Profile_Change__e";
/// The event's schema id (a real org derives it from the event's fields; fixed here).
const EVENT_SCHEMA_ID: &str = "Qm9ZkqI2PGn7lEoZ1Xr3wA";
const API_VERSION: &str = "66.0";
/// "The timeout for an outbound message is 60 seconds" (Apex callouts default to 10 s, but
/// one limit for both keeps the sim simple).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Backoff stops doubling after this many doublings (Salesforce caps retries at 2 h apart).
const MAX_DOUBLINGS: u32 = 7;
/// Validity of a generated signing certificate.
const CERT_DAYS: u32 = 365;

/// How often and how patiently a send is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRetry {
    /// Tries in all, the first included (0 is taken as 1).
    pub attempts: u32,
    /// Wait after the first failed try; each later wait doubles (up to `base × 128`).
    pub base: Duration,
}

impl Default for SendRetry {
    /// 5 tries, 50 ms apart at first: Salesforce's queue, scaled down.
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(50),
        }
    }
}

impl SendRetry {
    /// The wait after failed try number `attempt` (1-based).
    fn delay_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(MAX_DOUBLINGS);
        self.base.saturating_mul(1 << doublings)
    }
}

/// What a send did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Tries made.
    pub attempts: u32,
    /// Whether the last try was acknowledged.
    pub delivered: bool,
    /// HTTP status of the last try; `None` when it got no response.
    pub last_status: Option<u16>,
    /// The body of each try, in order.
    pub bodies: Vec<String>,
    /// The body of the last try's response (a refusal says why); `None` without a response.
    pub last_reply: Option<String>,
}

/// The claims the Named Credential puts in each callout's JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventClaims {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    /// `exp − iat`, whole seconds; Salesforce's default is two minutes.
    pub lifetime: Duration,
    /// Whether each JWT carries a fresh `jti`.
    pub with_jti: bool,
    /// Seconds the signing org's clock is ahead of this machine's (negative: behind); `iat`,
    /// `nbf` and `exp` are stamped on that clock, to play clock skew between the two sides.
    pub clock_skew_secs: i64,
}

impl EventClaims {
    /// These `iss`, `aud` and `sub`, a 120 s lifetime, a `jti` and no clock skew.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            subject: subject.into(),
            lifetime: Duration::from_secs(120),
            with_jti: true,
            clock_skew_secs: 0,
        }
    }
}

/// The sim's event-signing key and its certificate.
pub(crate) struct EventKey {
    encoding: EncodingKey,
    certificate_pem: String,
}

impl EventKey {
    pub(crate) fn from_material(material: &KeyMaterial) -> Result<Self, String> {
        let encoding =
            EncodingKey::from_rsa_pem(material.private_key_pem.expose_secret().as_bytes())
                .map_err(|e| format!("the event signing key is not an RSA PEM key: {e}"))?;
        Ok(Self {
            encoding,
            certificate_pem: material.certificate_pem.clone(),
        })
    }

    fn generate() -> Self {
        let material = keygen::generate(EVENT_SIGNING_CERT_NAME, CERT_DAYS)
            .expect("generating the sim's event signing key");
        Self::from_material(&material).expect("a freshly generated key is valid")
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// How one try ended.
struct Outcome {
    delivered: bool,
    label: String,
}

impl Outcome {
    fn http(status: u16, acknowledged: bool) -> Self {
        Self {
            delivered: acknowledged,
            label: if acknowledged {
                "ack".to_owned()
            } else if status == 200 {
                "nack".to_owned()
            } else {
                format!("http_{status}")
            },
        }
    }
}

impl SimOrg {
    /// The PEM certificate that verifies event callouts — what an operator puts in
    /// `EVENTS_JWT_CERTS`. Generates the key pair on first use unless
    /// [`SimConfig::event_signing_key`](super::SimConfig::event_signing_key) gave one.
    pub fn event_signing_certificate(&self) -> String {
        self.event_key().certificate_pem.clone()
    }

    fn event_key(&self) -> &EventKey {
        self.event_key.get_or_init(EventKey::generate)
    }

    /// A JWT signed as this org's event callouts are, for requests a test builds itself.
    pub fn event_token(&self, claims: &EventClaims) -> String {
        sign(self.event_key(), claims)
    }

    /// POSTs an outbound message from this org to `url`; see
    /// [`SimOrg::send_outbound_message_as`].
    pub async fn send_outbound_message(
        &self,
        url: &str,
        notification_ids: &[String],
        retry: SendRetry,
    ) -> SendReport {
        let org_id = self.org_id();
        self.send_outbound_message_as(&org_id, url, notification_ids, retry)
            .await
    }

    /// The body of an outbound message from `org_id` with one Notification per id, exactly
    /// as [`SimOrg::send_outbound_message_as`] sends it (for tests and load tools that post it
    /// themselves).
    pub fn outbound_message_body(&self, org_id: &str, notification_ids: &[String]) -> String {
        let (action_id, notifications) = {
            let state = self.shared.lock();
            let profile_ids: Vec<&str> = state.profiles.iter().map(|p| p.id.as_str()).collect();
            let notifications: Vec<(&str, String, String)> = notification_ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let profile_id = profile_ids
                        .get(i % profile_ids.len().max(1))
                        .map_or_else(|| ids::mint("00e"), |p| (*p).to_owned());
                    (id.as_str(), ids::mint("005"), profile_id)
                })
                .collect();
            (state.outbound_action_id.clone(), notifications)
        };
        outbound_message(org_id, &action_id, &self.base_url, &notifications)
    }

    /// POSTs an outbound message as the org `org_id` (any text, for wrong-org tests): one
    /// `Notification` per id (used verbatim as its `Id`), each a User with a fresh `005…` id
    /// and the id of one of the org's profiles (round-robin). Salesforce puts at most 100
    /// notifications in a message; this sends whatever it is given. Retried with the same
    /// body until a try gets HTTP 200 and the `notificationsResponse`/`Ack` `true` envelope.
    pub async fn send_outbound_message_as(
        &self,
        org_id: &str,
        url: &str,
        notification_ids: &[String],
        retry: SendRetry,
    ) -> SendReport {
        let body = self.outbound_message_body(org_id, notification_ids);
        let client = http_client();
        self.deliver(
            "send.outbound_message",
            retry,
            body,
            |body| {
                client
                    .post(url)
                    .header("Content-Type", "text/xml; charset=utf-8")
                    .header("SOAPAction", "\"\"")
                    .body(body.to_owned())
            },
            |status, reply| Outcome::http(status, status == 200 && is_ack(reply)),
        )
        .await
    }

    /// POSTs one `IPGuard_Profile_Change__e` event per profile name, as a JSON array of
    /// CometD-shaped events, with `Authorization: Bearer <JWT>` signed RS256 by the sim's key
    /// (`kid` [`EVENT_SIGNING_CERT_NAME`]). Each event gets the next replayId and a fresh
    /// `EventUuid`; a retry resends the same events under a freshly signed JWT. Any 2xx
    /// acknowledges.
    pub async fn send_platform_events(
        &self,
        url: &str,
        profiles: &[String],
        claims: &EventClaims,
        retry: SendRetry,
    ) -> SendReport {
        let events: Vec<Value> = {
            let mut state = self.shared.lock();
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            let admin_id = state.admin_id.clone();
            profiles
                .iter()
                .map(|profile| {
                    let replay_id = state.next_replay_id;
                    state.next_replay_id += 1;
                    platform_event(profile, &admin_id, &now, replay_id)
                })
                .collect()
        };
        let body = Value::Array(events).to_string();
        let key = self.event_key();
        let client = http_client();
        self.deliver(
            "send.platform_event",
            retry,
            body,
            |body| {
                client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .bearer_auth(sign(key, claims))
                    .body(body.to_owned())
            },
            |status, _| Outcome {
                delivered: (200..300).contains(&status),
                label: if (200..300).contains(&status) {
                    "ack".to_owned()
                } else {
                    format!("http_{status}")
                },
            },
        )
        .await
    }

    /// Tries `request` until `judge` calls a reply delivered or the tries run out, logging
    /// each try under `operation`.
    async fn deliver(
        &self,
        operation: &str,
        retry: SendRetry,
        body: String,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
        judge: impl Fn(u16, &[u8]) -> Outcome,
    ) -> SendReport {
        let attempts = retry.attempts.max(1);
        let mut report = SendReport::default();
        for attempt in 1..=attempts {
            let (status, outcome, reply) = match request(&body).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let reply = response.bytes().await.unwrap_or_default();
                    let outcome = judge(status, &reply);
                    let reply = String::from_utf8_lossy(&reply).into_owned();
                    (Some(status), outcome, Some(reply))
                }
                Err(error) => (
                    None,
                    Outcome {
                        delivered: false,
                        label: if error.is_timeout() {
                            "timeout"
                        } else {
                            "unreachable"
                        }
                        .to_owned(),
                    },
                    None,
                ),
            };
            self.shared.lock().record(operation, &outcome.label);
            report.attempts = attempt;
            report.last_status = status;
            report.last_reply = reply;
            report.bodies.push(body.clone());
            if outcome.delivered {
                report.delivered = true;
                break;
            }
            if attempt < attempts {
                tokio::time::sleep(retry.delay_after(attempt)).await;
            }
        }
        report
    }
}

fn http_client() -> reqwest::Client {
    crate::wiring::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .expect("building the sim's HTTP client")
}

/// The outbound message, laid out like a real capture (one-space indents, no XML
/// declaration), with `SessionId` nil as since February 2026. `notifications` holds
/// (notification id, user id, profile id).
fn outbound_message(
    org_id: &str,
    action_id: &str,
    base_url: &str,
    notifications: &[(&str, String, String)],
) -> String {
    let org15: String = org_id.chars().take(15).collect();
    let e = xml::escape;
    let mut out = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"{xsi}\">\n \
         <soapenv:Body>\n  <notifications xmlns=\"{OUTBOUND_NS}\">\n   \
         <OrganizationId>{org}</OrganizationId>\n   <ActionId>{action}</ActionId>\n   \
         <SessionId xsi:nil=\"true\"/>\n   \
         <EnterpriseUrl>{base}/services/Soap/c/{API_VERSION}/{org15}</EnterpriseUrl>\n   \
         <PartnerUrl>{base}/services/Soap/u/{API_VERSION}/{org15}</PartnerUrl>\n",
        xsi = xml::XSI_NS,
        org = e(org_id),
        action = e(action_id),
        base = e(base_url),
        org15 = e(&org15),
    );
    for (id, user_id, profile_id) in notifications {
        out.push_str(&format!(
            "   <Notification>\n    <Id>{}</Id>\n    \
             <sObject xsi:type=\"sf:User\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">\n     \
             <sf:Id>{}</sf:Id>\n     <sf:ProfileId>{}</sf:ProfileId>\n    </sObject>\n   \
             </Notification>\n",
            e(id),
            e(user_id),
            e(profile_id),
        ));
    }
    out.push_str("  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>");
    out
}

/// HTTP 200's body is the ACK: an envelope whose Body holds `notificationsResponse` with
/// `Ack` `true`, both in the outbound namespace.
fn is_ack(reply: &[u8]) -> bool {
    let Ok(root) = xml::parse(reply) else {
        return false;
    };
    root.is(SOAP_ENV_NS, "Envelope")
        && root
            .child(SOAP_ENV_NS, "Body")
            .and_then(|body| body.child(OUTBOUND_NS, "notificationsResponse"))
            .and_then(|response| response.child_text(OUTBOUND_NS, "Ack"))
            == Some("true")
}

/// One event in the CometD shape; the payload is what ipguard's Apex publishes from a
/// `SetupAuditTrail` row (`ChangedBy__c` the admin's user id, `AuditTrailId__c` the row's
/// `0Ym…` id).
fn platform_event(profile: &str, admin_id: &str, now: &str, replay_id: u64) -> Value {
    json!({
        "channel": EVENT_CHANNEL,
        "data": {
            "schema": EVENT_SCHEMA_ID,
            "payload": {
                "CreatedDate": now,
                "CreatedById": &admin_id[..15.min(admin_id.len())],
                "ProfileName__c": profile,
                "ChangedBy__c": admin_id,
                "ChangedAt__c": now,
                "AuditTrailId__c": ids::mint("0Ym"),
            },
            "event": {
                "EventUuid": uuid::Uuid::new_v4().to_string(),
                "replayId": replay_id,
            },
        },
    })
}

/// A fresh JWT: `iat` = `nbf` = now (on the signer's skewed clock), `exp` = now + lifetime,
/// header `typ` JWT and `kid`.
fn sign(key: &EventKey, claims: &EventClaims) -> String {
    let now = Utc::now()
        .timestamp()
        .saturating_add(claims.clock_skew_secs);
    let lifetime = i64::try_from(claims.lifetime.as_secs()).unwrap_or(i64::MAX);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(EVENT_SIGNING_CERT_NAME.to_owned());
    let body = Claims {
        iss: &claims.issuer,
        sub: &claims.subject,
        aud: &claims.audience,
        exp: now.saturating_add(lifetime),
        iat: now,
        nbf: now,
        jti: claims.with_jti.then(|| uuid::Uuid::new_v4().to_string()),
    };
    jsonwebtoken::encode(&header, &body, &key.encoding).expect("RS256 signing with a valid key")
}

#[cfg(test)]
mod tests {
    //! Over real HTTP: a small actix-web receiver stands in for ipguard and answers each
    //! request as the test scripts it.

    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Instant;

    use actix_web::{App, HttpRequest, HttpServer, web};
    use jsonwebtoken::{DecodingKey, Validation};
    use x509_parser::public_key::PublicKey;

    use super::*;
    use crate::sim::SimConfig;
    use crate::xml::{Element, XSI_NS};

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

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/salesforce/outbound-messages/aspnet-webhooks/{name}",
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
            Receiver::start(move |i, _| script.get(i).cloned().unwrap_or_else(|| (200, ack())))
                .await;
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
            chrono::DateTime::parse_from_rfc3339(payload["ChangedAt__c"].as_str().unwrap())
                .unwrap();
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
        let receiver =
            Receiver::start(|_, _| (401, r#"{"error":"invalid_token"}"#.to_owned())).await;

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
}
