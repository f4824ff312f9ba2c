//! The simulated org over real HTTP, as ipguard sees it: JWT bearer logins, the Metadata SOAP
//! calls, deploy lifecycles, faults, Heroku NAT and the admin API, one file per surface; the
//! shared helpers (a registered key, logins, SOAP envelopes, deploys and polling) are here.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::*;
use ipguard_wire::keygen::{self, KeyMaterial};
use ipguard_wire::package::deploy_zip;
use ipguard_wire::profile::{self, ProfileName};
use ipguard_wire::xml::{self, Element, METADATA_NS, SOAP_ENV_NS, XSI_NS};

mod access;
mod admin;
mod deploy;
mod faults;
mod heroku;
mod metadata;
mod oauth;
mod rest;
mod side_doors;
mod tls;

// ---------------------------------------------------------------------------------------
// Helpers

/// RSA generation is slow in debug builds: one registered key (and one stranger) per process.
fn key() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate("ipguard-sim-test", 30).expect("keygen"))
}

fn other_key() -> &'static KeyMaterial {
    static KEY: OnceLock<KeyMaterial> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate("someone-else", 30).expect("keygen"))
}

fn client() -> reqwest::Client {
    crate::tls::install_crypto_provider();
    reqwest::Client::new()
}

fn config() -> SimConfig {
    SimConfig {
        pending_for: Duration::from_millis(60),
        in_progress_for: Duration::from_millis(60),
        ..SimConfig::new(key().certificate_pem.clone())
    }
}

async fn start(config: SimConfig) -> SimOrg {
    SimOrg::start(config, 0).await.expect("sim starts")
}

fn range(start: &str, end: &str) -> LoginIpRange {
    LoginIpRange::parse_existing(start, end, None).unwrap()
}

fn keys_of(ranges: &[LoginIpRange]) -> Vec<(std::net::IpAddr, std::net::IpAddr)> {
    ranges.iter().map(LoginIpRange::key).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn good_claims() -> Value {
    json!({
        "iss": DEFAULT_CLIENT_ID,
        "sub": DEFAULT_USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": now() + 170,
    })
}

fn sign(key: &KeyMaterial, claims: &Value) -> String {
    let encoding =
        EncodingKey::from_rsa_pem(key.private_key_pem.expose_secret().as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &encoding).unwrap()
}

async fn token_request(sim: &SimOrg, assertion: &str) -> (StatusCode, String) {
    let response = client()
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn login(sim: &SimOrg) -> String {
    let (status, body) = token_request(sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn envelope(session: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP_ENV_NS}\" \
         xmlns:xsi=\"{XSI_NS}\"><soap:Header><SessionHeader xmlns=\"{METADATA_NS}\">\
         <sessionId>{}</sessionId></SessionHeader></soap:Header><soap:Body>{body}</soap:Body>\
         </soap:Envelope>",
        xml::escape(session)
    )
}

struct SoapReply {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl SoapReply {
    /// The single element inside the Body.
    fn body(&self) -> Element {
        let root = xml::parse(self.text.as_bytes()).expect("response is XML");
        assert!(root.is(SOAP_ENV_NS, "Envelope"), "{}", self.text);
        root.child(SOAP_ENV_NS, "Body").unwrap().children[0].clone()
    }

    fn result(&self) -> Element {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        self.body().child(METADATA_NS, "result").unwrap().clone()
    }

    /// (faultcode, faultstring) of a fault response, which must be HTTP 500.
    fn fault(&self) -> (String, String) {
        assert_eq!(
            self.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            self.text
        );
        let fault = self.body();
        assert!(fault.is(SOAP_ENV_NS, "Fault"), "{}", self.text);
        (
            fault.child_local("faultcode").unwrap().text.clone(),
            fault.child_local("faultstring").unwrap().text.clone(),
        )
    }
}

async fn post_soap(sim: &SimOrg, body: String) -> SoapReply {
    let response = client()
        .post(format!("{}/services/Soap/m/66.0", sim.base_url()))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "\"\"")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    SoapReply {
        status,
        content_type,
        text: response.text().await.unwrap(),
    }
}

async fn soap(sim: &SimOrg, session: &str, body: &str) -> SoapReply {
    post_soap(sim, envelope(session, body)).await
}

fn list_profiles_body() -> String {
    format!(
        "<listMetadata xmlns=\"{METADATA_NS}\"><queries><type>Profile</type></queries>\
         <asOfVersion>66.0</asOfVersion></listMetadata>"
    )
}

fn read_body(names: &[&str]) -> String {
    let names: String = names
        .iter()
        .map(|n| format!("<fullNames>{}</fullNames>", xml::escape(n)))
        .collect();
    format!("<readMetadata xmlns=\"{METADATA_NS}\"><type>Profile</type>{names}</readMetadata>")
}

/// readMetadata of any type.
fn read_typed_body(kind: &str, names: &[&str]) -> String {
    let names: String = names
        .iter()
        .map(|n| format!("<fullNames>{}</fullNames>", xml::escape(n)))
        .collect();
    format!("<readMetadata xmlns=\"{METADATA_NS}\"><type>{kind}</type>{names}</readMetadata>")
}

/// A REST query: (status, JSON body).
async fn rest_query(sim: &SimOrg, session: &str, soql: &str) -> (StatusCode, Value) {
    let q = percent_encoding::utf8_percent_encode(soql, percent_encoding::NON_ALPHANUMERIC);
    let response = client()
        .get(format!(
            "{}/services/data/v66.0/query?q={q}",
            sim.base_url()
        ))
        .bearer_auth(session)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The records of a query that must succeed.
async fn records(sim: &SimOrg, session: &str, soql: &str) -> Vec<Value> {
    let (status, body) = rest_query(sim, session, soql).await;
    assert_eq!(status, StatusCode::OK, "{soql}: {body}");
    body["records"].as_array().unwrap().clone()
}

/// listMetadata(Profile): full name → id.
async fn profile_ids(sim: &SimOrg, session: &str) -> Vec<(String, String)> {
    let reply = soap(sim, session, &list_profiles_body()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply
        .body()
        .children_named(METADATA_NS, "result")
        .map(|r| {
            (
                r.child_text(METADATA_NS, "fullName").unwrap().to_owned(),
                r.child_text(METADATA_NS, "id").unwrap().to_owned(),
            )
        })
        .collect()
}

struct Deploy {
    zip: Vec<u8>,
    check_only: bool,
    rollback_on_error: bool,
    test_level: Option<&'static str>,
}

impl Deploy {
    fn of(zip: Vec<u8>) -> Self {
        Self {
            zip,
            check_only: false,
            rollback_on_error: true,
            test_level: None,
        }
    }

    fn profiles(profiles: &[(&str, Vec<LoginIpRange>)]) -> Self {
        let profiles: Vec<(ProfileName, Vec<LoginIpRange>)> = profiles
            .iter()
            .map(|(n, r)| (ProfileName::parse(n).unwrap(), r.clone()))
            .collect();
        Self::of(deploy_zip(&profiles, "66.0").unwrap())
    }

    fn body(&self) -> String {
        use base64::Engine;
        let test_level = self
            .test_level
            .map(|t| format!("<testLevel>{t}</testLevel>"))
            .unwrap_or_default();
        format!(
            "<deploy xmlns=\"{METADATA_NS}\"><ZipFile>{}</ZipFile><DeployOptions>\
             <allowMissingFiles>false</allowMissingFiles><autoUpdatePackage>false</autoUpdatePackage>\
             <checkOnly>{}</checkOnly><ignoreWarnings>false</ignoreWarnings>\
             <performRetrieve>false</performRetrieve><purgeOnDelete>false</purgeOnDelete>\
             <rollbackOnError>{}</rollbackOnError><singlePackage>true</singlePackage>{test_level}\
             </DeployOptions></deploy>",
            base64::engine::general_purpose::STANDARD.encode(&self.zip),
            self.check_only,
            self.rollback_on_error,
        )
    }
}

/// Sends the deploy and returns its id (checking the deployResponse shape).
async fn deploy(sim: &SimOrg, session: &str, deploy: &Deploy) -> String {
    let reply = soap(sim, session, &deploy.body()).await;
    let result = reply.result();
    assert!(reply.body().is(METADATA_NS, "deployResponse"));
    assert_eq!(result.child_text(METADATA_NS, "done"), Some("false"));
    assert_eq!(result.child_text(METADATA_NS, "state"), Some("Queued"));
    let id = result.child_text(METADATA_NS, "id").unwrap().to_owned();
    assert!(id.starts_with("0Af") && ids::is_valid_18(&id), "{id}");
    id
}

async fn check_status(sim: &SimOrg, session: &str, id: &str) -> Element {
    let body = format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>{id}</asyncProcessId>\
         <includeDetails>true</includeDetails></checkDeployStatus>"
    );
    soap(sim, session, &body).await.result()
}

/// Polls until done; returns every distinct status seen, in order, and the final result.
async fn poll(sim: &SimOrg, session: &str, id: &str) -> (Vec<String>, Element) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let result = check_status(sim, session, id).await;
        let status = result.child_text(METADATA_NS, "status").unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if result.child_text(METADATA_NS, "done") == Some("true") {
            return (seen, result);
        }
        assert!(Instant::now() < deadline, "deploy never finished: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(element: &Element) -> Vec<&str> {
    element.children.iter().map(|c| c.name.as_str()).collect()
}

fn failures(result: &Element) -> Vec<Element> {
    result
        .child(METADATA_NS, "details")
        .unwrap()
        .children_named(METADATA_NS, "componentFailures")
        .cloned()
        .collect()
}
