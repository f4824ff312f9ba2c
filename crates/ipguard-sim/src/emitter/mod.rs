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
use ipguard_wire::keygen::{self, KeyMaterial};
use ipguard_wire::xml::{self, SOAP_ENV_NS};

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
    crate::tls::install_crypto_provider();
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
mod tests;
