//! The simulated org over real HTTP, as ipguard sees it: JWT bearer logins, the Metadata SOAP
//! calls, deploy lifecycles, faults, Heroku NAT and the admin API.

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
    let _ = rustls::crypto::ring::default_provider().install_default();
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

// ---------------------------------------------------------------------------------------
// OAuth 2.0 JWT bearer

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

// ---------------------------------------------------------------------------------------
// listMetadata / readMetadata

#[tokio::test]
async fn list_metadata_returns_file_properties_with_verbatim_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let reply = soap(&sim, &session, &list_profiles_body()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type.starts_with("text/xml"),
        "{}",
        reply.content_type
    );
    let response = reply.body();
    assert!(response.is(METADATA_NS, "listMetadataResponse"));
    let results: Vec<&Element> = response.children_named(METADATA_NS, "result").collect();
    let full_names: Vec<&str> = results
        .iter()
        .map(|r| r.child_text(METADATA_NS, "fullName").unwrap())
        .collect();
    assert_eq!(
        full_names,
        [
            "Admin",
            "Custom%3A Support",
            "Custom%3A Integration",
            "Standard"
        ]
    );
    let support = results[1];
    assert_eq!(
        names(support),
        [
            "createdById",
            "createdByName",
            "createdDate",
            "fileName",
            "fullName",
            "id",
            "lastModifiedById",
            "lastModifiedByName",
            "lastModifiedDate",
            "manageableState",
            "type"
        ]
    );
    assert_eq!(
        support.child_text(METADATA_NS, "fileName"),
        Some("profiles/Custom%3A Support.profile")
    );
    assert_eq!(support.child_text(METADATA_NS, "type"), Some("Profile"));
    assert_eq!(
        support.child_text(METADATA_NS, "manageableState"),
        Some("unmanaged")
    );
    let id = support.child_text(METADATA_NS, "id").unwrap();
    assert!(id.starts_with("00e") && ids::is_valid_18(id), "{id}");

    // Another type: the empty response, exactly like Salesforce's.
    let body = format!(
        "<listMetadata xmlns=\"{METADATA_NS}\"><queries><type>CustomObject</type></queries>\
         <asOfVersion>66.0</asOfVersion></listMetadata>"
    );
    let empty = soap(&sim, &session, &body).await.body();
    assert!(empty.is(METADATA_NS, "listMetadataResponse"));
    assert!(empty.children.is_empty());
    assert_eq!(sim.count("listMetadata"), 2);
    sim.stop().await;
}

#[tokio::test]
async fn read_metadata_returns_profiles_and_empty_records_for_unknown_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let reply = soap(
        &sim,
        &session,
        &read_body(&["Custom%3A Support", "No Such"]),
    )
    .await;
    assert!(reply.body().is(METADATA_NS, "readMetadataResponse"));
    let result = reply.result();
    let records: Vec<&Element> = result.children_named(METADATA_NS, "records").collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].attribute(Some(XSI_NS), "type"), Some("Profile"));
    assert_eq!(
        records[0].child_text(METADATA_NS, "fullName"),
        Some("Custom%3A Support")
    );
    let ranges = profile::login_ip_ranges(records[0]).unwrap().unwrap();
    assert_eq!(
        keys_of(&ranges),
        keys_of(&[range("198.51.100.0", "198.51.100.255")])
    );
    assert_eq!(ranges[0].description(), Some("Head office"));
    let first_range = records[0].child(METADATA_NS, "loginIpRanges").unwrap();
    assert_eq!(
        names(first_range),
        ["description", "endAddress", "startAddress"]
    );
    assert_eq!(records[1].child(METADATA_NS, "fullName"), None);
    assert_eq!(profile::login_ip_ranges(records[1]).unwrap(), None);
    sim.stop().await;
}

#[tokio::test]
async fn read_metadata_refuses_more_than_ten_names() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let ten: Vec<String> = (0..10).map(|i| format!("P{i}")).collect();
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    let reply = soap(&sim, &session, &read_body(&ten)).await;
    assert_eq!(reply.result().children.len(), 10);
    let mut eleven = ten.clone();
    eleven.push("Admin");
    let (code, message) = soap(&sim, &session, &read_body(&eleven)).await.fault();
    assert_eq!(code, "sf:EXCEEDED_ID_LIMIT");
    assert_eq!(
        message,
        "EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than 10 records in this operation"
    );
    assert_eq!(sim.calls().last().unwrap().outcome, "EXCEEDED_ID_LIMIT");
    sim.stop().await;
}

// ---------------------------------------------------------------------------------------
// deploy / checkDeployStatus

#[tokio::test]
async fn deploy_goes_pending_in_progress_succeeded_and_replaces_the_list() {
    let sim = start(SimConfig {
        pending_for: Duration::from_millis(400),
        in_progress_for: Duration::from_millis(400),
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let admin_before = sim.login_ip_ranges("Admin").unwrap();
    let target = vec![
        LoginIpRange::parse_existing("52.1.2.3", "52.1.2.3", Some("ipguard: acme-space")).unwrap(),
        range("52.1.2.8", "52.1.2.15"),
    ];
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Custom%3A Support", target.clone())]),
    )
    .await;
    let (seen, result) = poll(&sim, &session, &id).await;
    assert_eq!(seen, ["Pending", "InProgress", "Succeeded"]);
    assert_eq!(
        names(&result),
        [
            "checkOnly",
            "completedDate",
            "createdBy",
            "createdByName",
            "createdDate",
            "details",
            "done",
            "id",
            "ignoreWarnings",
            "lastModifiedDate",
            "numberComponentErrors",
            "numberComponentsDeployed",
            "numberComponentsTotal",
            "numberTestErrors",
            "numberTestsCompleted",
            "numberTestsTotal",
            "rollbackOnError",
            "runTestsEnabled",
            "startDate",
            "status",
            "success"
        ]
    );
    assert_eq!(result.child_text(METADATA_NS, "success"), Some("true"));
    assert_eq!(result.child_text(METADATA_NS, "id"), Some(id.as_str()));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentsDeployed"),
        Some("1")
    );
    let details = result.child(METADATA_NS, "details").unwrap();
    let success = details.child(METADATA_NS, "componentSuccesses").unwrap();
    assert_eq!(
        names(success),
        [
            "changed",
            "componentType",
            "created",
            "createdDate",
            "deleted",
            "fileName",
            "fullName",
            "success"
        ]
    );
    assert_eq!(
        success.child_text(METADATA_NS, "componentType"),
        Some("Profile")
    );
    assert_eq!(success.child_text(METADATA_NS, "changed"), Some("true"));
    assert_eq!(
        success.child_text(METADATA_NS, "fileName"),
        Some("profiles/Custom%3A Support.profile")
    );
    // REPLACE: the office range is gone, exactly the deployed list remains.
    let now_support = sim.login_ip_ranges("Custom%3A Support").unwrap();
    assert_eq!(keys_of(&now_support), keys_of(&target));
    assert_eq!(now_support[0].description(), Some("ipguard: acme-space"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Admin").unwrap()),
        keys_of(&admin_before)
    );
    // The change is visible to readMetadata and attributed to the integration user.
    let reply = soap(&sim, &session, &read_body(&["Custom%3A Support"])).await;
    let record = reply.result().children[0].clone();
    assert_eq!(
        keys_of(&profile::login_ip_ranges(&record).unwrap().unwrap()),
        keys_of(&target)
    );
    let records = sim.deploys();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, id);
    assert_eq!(records[0].status, "Succeeded");
    assert_eq!(records[0].profiles, ["Custom%3A Support"]);
    assert_eq!(
        records[0].files,
        ["package.xml", "profiles/Custom%3A Support.profile"]
    );
    assert!(!records[0].check_only);
    sim.stop().await;
}

#[tokio::test]
async fn pending_and_in_progress_results_match_the_samples() {
    let sim = start(SimConfig {
        pending_for: Duration::from_secs(30),
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    let pending = check_status(&sim, &session, &id).await;
    // Pending: no completedDate, no startDate (as in check-deploy-status-pending.xml).
    assert_eq!(pending.child(METADATA_NS, "completedDate"), None);
    assert_eq!(pending.child(METADATA_NS, "startDate"), None);
    assert_eq!(pending.child_text(METADATA_NS, "status"), Some("Pending"));
    assert_eq!(pending.child_text(METADATA_NS, "done"), Some("false"));
    assert_eq!(
        pending.child_text(METADATA_NS, "createdByName"),
        Some("Integration User")
    );
    // A 15-character form of the id finds the same deploy.
    let short = check_status(&sim, &session, &id[..15]).await;
    assert_eq!(short.child_text(METADATA_NS, "id"), Some(id.as_str()));
    assert_eq!(sim.deploys()[0].status, "Pending");
    // Unknown id: a fault, never a panic.
    let body = format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>0Af000000000000AAA</asyncProcessId>\
         <includeDetails>true</includeDetails></checkDeployStatus>"
    );
    let (code, message) = soap(&sim, &session, &body).await.fault();
    assert_eq!(code, "sf:INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(
        message,
        "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id"
    );
    sim.stop().await;
}

#[tokio::test]
async fn deploy_finishes_even_when_nobody_polls() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Admin").unwrap()),
        keys_of(&[range("1.2.3.4", "1.2.3.4")])
    );
    assert_eq!(sim.deploys()[0].status, "Succeeded");
    sim.stop().await;
}

#[tokio::test]
async fn a_file_without_login_ip_ranges_leaves_the_list_alone() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Custom%3A Support", Vec::new())]),
    )
    .await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    let success = result
        .child(METADATA_NS, "details")
        .unwrap()
        .child(METADATA_NS, "componentSuccesses")
        .unwrap()
        .clone();
    assert_eq!(success.child_text(METADATA_NS, "changed"), Some("false"));
    let after = sim.login_ip_ranges("Custom%3A Support").unwrap();
    assert_eq!(keys_of(&after), keys_of(&before));
    assert!(!after.is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn check_only_validates_and_changes_nothing() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let request = Deploy {
        check_only: true,
        ..Deploy::profiles(&[("Custom%3A Support", vec![range("52.1.2.3", "52.1.2.3")])])
    };
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "checkOnly"), Some("true"));
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(result.child_text(METADATA_NS, "success"), Some("true"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&before)
    );
    assert!(sim.deploys()[0].check_only);
    sim.stop().await;
}

#[tokio::test]
async fn an_oversized_new_range_fails_the_deploy_and_nothing_is_applied() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let support_before = sim.login_ip_ranges("Custom%3A Support").unwrap();
    let request = Deploy::profiles(&[
        ("Custom%3A Support", vec![range("52.1.2.3", "52.1.2.3")]),
        ("Admin", vec![range("10.0.0.0", "11.255.255.255")]),
    ]);
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(result.child_text(METADATA_NS, "success"), Some("false"));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentErrors"),
        Some("1")
    );
    let failures = failures(&result);
    assert_eq!(failures.len(), 1);
    let failure = &failures[0];
    assert_eq!(
        names(failure),
        [
            "changed",
            "componentType",
            "created",
            "createdDate",
            "deleted",
            "fileName",
            "fullName",
            "problem",
            "problemType",
            "success"
        ]
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "componentType"),
        Some("Profile")
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "fileName"),
        Some("profiles/Admin.profile")
    );
    assert_eq!(failure.child_text(METADATA_NS, "fullName"), Some("Admin"));
    assert_eq!(
        failure.child_text(METADATA_NS, "problemType"),
        Some("Error")
    );
    assert_eq!(failure.child_text(METADATA_NS, "success"), Some("false"));
    let problem = failure.child_text(METADATA_NS, "problem").unwrap();
    assert!(problem.contains("10.0.0.0 - 11.255.255.255"), "{problem}");
    // rollbackOnError: the valid Support change was not applied either.
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&support_before)
    );
    assert!(sim.login_ip_ranges("Admin").unwrap().is_empty());
    assert_eq!(sim.deploys()[0].problems, [problem.to_owned()]);
    sim.stop().await;
}

#[tokio::test]
async fn a_legacy_range_already_on_the_profile_is_carried_as_it_is() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let legacy = LoginIpRange::existing(
        "0.0.0.0".parse().unwrap(),
        "255.255.255.255".parse().unwrap(),
        Some("everyone (pre-Winter '26)".into()),
    )
    .unwrap();
    sim.set_login_ip_ranges("Admin", vec![legacy.clone()]);
    let target = vec![legacy, range("52.1.2.3", "52.1.2.3")];
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", target.clone())]),
    )
    .await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Admin").unwrap()),
        keys_of(&target)
    );
    sim.stop().await;
}

#[tokio::test]
async fn unknown_profile_missing_file_and_missing_package_xml_fail() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    // An unknown profile.
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Ghost", vec![range("1.1.1.1", "1.1.1.1")])]),
    )
    .await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(
        failures(&result)[0].child_text(METADATA_NS, "problem"),
        Some("In field: fullName - no Profile named Ghost found")
    );
    // No package.xml: the sample's failure.
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(
            "profiles/Admin.profile",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(profile::profile_file(&[range("1.1.1.1", "1.1.1.1")]).as_bytes())
            .unwrap();
        zip.finish().unwrap().into_inner()
    };
    let id = deploy(&sim, &session, &Deploy::of(zip)).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert_eq!(
        result.child_text(METADATA_NS, "numberComponentErrors"),
        Some("0")
    );
    let failure = &failures(&result)[0];
    assert_eq!(
        failure.child_text(METADATA_NS, "problem"),
        Some("No package.xml found")
    );
    assert_eq!(
        failure.child_text(METADATA_NS, "fileName"),
        Some("package.xml")
    );
    assert_eq!(failure.child_text(METADATA_NS, "componentType"), Some(""));
    // Not a zip at all.
    let id = deploy(&sim, &session, &Deploy::of(b"garbage".to_vec())).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    assert!(sim.login_ip_ranges("Admin").unwrap().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn production_refuses_no_test_run() {
    let sim = start(SimConfig {
        production: true,
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let mut request = Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]);
    request.test_level = Some("NoTestRun");
    let (code, message) = soap(&sim, &session, &request.body()).await.fault();
    assert_eq!(code, "sf:INVALID_OPERATION");
    assert_eq!(
        message,
        "INVALID_OPERATION: testLevel of NoTestRun cannot be used in production organizations"
    );
    assert!(sim.deploys().is_empty());
    assert_eq!(sim.calls().last().unwrap().outcome, "INVALID_OPERATION");
    // Omitting testLevel (what ipguard does) is fine.
    request.test_level = None;
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    sim.stop().await;
}

#[tokio::test]
async fn forced_failure_and_stuck_deploys() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let request = Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]);
    sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Fail(vec!["first problem".into(), "second problem".into()]),
        ..Faults::default()
    });
    let id = deploy(&sim, &session, &request).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    let problems: Vec<String> = failures(&result)
        .iter()
        .map(|f| f.child_text(METADATA_NS, "problem").unwrap().to_owned())
        .collect();
    assert_eq!(problems, ["first problem", "second problem"]);
    assert!(sim.login_ip_ranges("Admin").unwrap().is_empty());

    sim.set_faults(Faults {
        deploy_outcome: DeployOutcome::Stuck,
        ..Faults::default()
    });
    let id = deploy(&sim, &session, &request).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let result = check_status(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("InProgress"));
    assert_eq!(result.child_text(METADATA_NS, "done"), Some("false"));
    sim.set_faults(Faults::default());
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Succeeded"));
    assert_eq!(sim.login_ip_ranges("Admin").unwrap().len(), 1);
    sim.stop().await;
}

#[tokio::test]
async fn a_deploy_can_lock_the_integration_user_out() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let request = Deploy::profiles(&[(
        DEFAULT_INTEGRATION_PROFILE,
        vec![range("198.51.100.7", "198.51.100.7")],
    )]);
    let id = deploy(&sim, &session, &request).await;
    poll(&sim, &session, &id).await;
    let (status, body) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("ip restricted"), "{body}");
    sim.stop().await;
}

// ---------------------------------------------------------------------------------------
// Sessions and faults

#[tokio::test]
async fn sessions_die_after_n_calls_and_a_new_token_works() {
    let sim = start(config()).await;
    sim.set_faults(Faults {
        session_expires_after_calls: Some(2),
        ..Faults::default()
    });
    let session = login(&sim).await;
    for _ in 0..2 {
        assert_eq!(
            soap(&sim, &session, &list_profiles_body()).await.status,
            StatusCode::OK
        );
    }
    let (code, message) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(code, "sf:INVALID_SESSION_ID");
    assert_eq!(
        message,
        "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session"
    );
    // Dead for good.
    soap(&sim, &session, &list_profiles_body()).await.fault();
    let fresh = login(&sim).await;
    assert_ne!(fresh, session);
    assert_eq!(
        soap(&sim, &fresh, &list_profiles_body()).await.status,
        StatusCode::OK
    );
    // Unknown and missing sessions.
    soap(&sim, "00D5g000004FAKE!bogus", &list_profiles_body())
        .await
        .fault();
    let no_header = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\"><soapenv:Body>{}</soapenv:Body></soapenv:Envelope>",
        list_profiles_body()
    );
    let (code, _) = post_soap(&sim, no_header).await.fault();
    assert_eq!(code, "sf:INVALID_SESSION_ID");
    sim.stop().await;
}

#[tokio::test]
async fn each_failure_kind_is_injected_in_order() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_faults(Faults {
        next_failures: vec![
            FailureKind::Http500,
            FailureKind::Http503,
            FailureKind::RequestLimitExceeded,
            FailureKind::ServerUnavailable,
            FailureKind::InvalidSession,
        ],
        ..Faults::default()
    });
    let reply = soap(&sim, &session, &list_profiles_body()).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.content_type.starts_with("text/plain"));
    let reply = soap(&sim, &session, &list_profiles_body()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.content_type.starts_with("text/html"));
    let reply = soap(&sim, &session, &list_profiles_body()).await;
    assert_eq!(
        reply.fault(),
        (
            "sf:REQUEST_LIMIT_EXCEEDED".to_owned(),
            "REQUEST_LIMIT_EXCEEDED: ConcurrentRequests (Concurrent API Requests) Limit exceeded."
                .to_owned()
        )
    );
    // Metadata faults carry the Metadata namespace on `sf` and no detail.
    assert!(
        reply
            .text
            .contains("xmlns:sf=\"http://soap.sforce.com/2006/04/metadata\"")
    );
    assert!(!reply.text.contains("<detail>"));
    let (code, message) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(code, "sf:SERVER_UNAVAILABLE");
    assert!(message.starts_with("SERVER_UNAVAILABLE: "), "{message}");
    let (code, _) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(code, "sf:INVALID_SESSION_ID");
    // The injected INVALID_SESSION_ID killed the session.
    let (code, _) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(code, "sf:INVALID_SESSION_ID");
    let outcomes: Vec<String> = sim.calls().into_iter().skip(1).map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            "http_500",
            "http_503",
            "REQUEST_LIMIT_EXCEEDED",
            "SERVER_UNAVAILABLE",
            "INVALID_SESSION_ID",
            "INVALID_SESSION_ID"
        ]
    );
    assert_eq!(sim.count("listMetadata"), 6);
    sim.stop().await;
}

#[tokio::test]
async fn token_calls_take_http_failures_and_leave_soap_ones_queued() {
    let sim = start(config()).await;
    sim.set_faults(Faults {
        next_failures: vec![FailureKind::Http503, FailureKind::InvalidSession],
        ..Faults::default()
    });
    let (status, _) = token_request(&sim, &sign(key(), &good_claims())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // InvalidSession waits for the SOAP call.
    let session = login(&sim).await;
    let (code, _) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(code, "sf:INVALID_SESSION_ID");
    assert_eq!(sim.calls()[0].outcome, "http_503");
    sim.stop().await;
}

#[tokio::test]
async fn an_outage_fails_every_call_until_its_time_is_up() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    // An HTTP-level outage takes token calls too, and leaves the queue for afterwards.
    sim.set_faults(Faults {
        outage: Some(Outage {
            kind: FailureKind::Http503,
            duration: Duration::from_millis(400),
        }),
        next_failures: vec![FailureKind::ServerUnavailable],
        ..Faults::default()
    });
    let started = Instant::now();
    for _ in 0..3 {
        let (status, _) = token_request(&sim, &sign(key(), &good_claims())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let reply = soap(&sim, &session, &list_profiles_body()).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "test too slow to see the outage"
    );
    tokio::time::sleep(Duration::from_millis(400).saturating_sub(started.elapsed())).await;
    let (code, _) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(
        code, "sf:SERVER_UNAVAILABLE",
        "the queued failure comes after the outage"
    );
    assert_eq!(
        soap(&sim, &session, &list_profiles_body()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sim.calls()
            .iter()
            .filter(|c| c.outcome == "http_503")
            .count(),
        6
    );

    // An API-only outage (set through the admin API) lets the token call through and answers
    // SOAP with a fault, REST with HTTP 403.
    let url = sim.base_url();
    let response = client()
        .put(format!("{url}/sim/faults"))
        .json(&json!({"outage": {"kind": "request_limit_exceeded", "duration_ms": 300}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started = Instant::now();
    let session = login(&sim).await;
    let (code, _) = soap(&sim, &session, &list_profiles_body()).await.fault();
    assert_eq!(code, "sf:REQUEST_LIMIT_EXCEEDED");
    let rest = client()
        .get(format!(
            "{url}/services/data/v66.0/query?q=SELECT+Id+FROM+SetupAuditTrail"
        ))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), StatusCode::FORBIDDEN);
    assert!(
        rest.text()
            .await
            .unwrap()
            .contains("REQUEST_LIMIT_EXCEEDED")
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "test too slow to see the outage"
    );
    tokio::time::sleep(Duration::from_millis(300).saturating_sub(started.elapsed())).await;
    assert_eq!(
        soap(&sim, &session, &list_profiles_body()).await.status,
        StatusCode::OK
    );
    sim.stop().await;
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let sim = start(config()).await;
    sim.set_faults(Faults {
        latency: Duration::from_millis(250),
        ..Faults::default()
    });
    let started = Instant::now();
    login(&sim).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    sim.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_faults_not_panics() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let (code, _) = post_soap(&sim, "this is not XML <".into()).await.fault();
    assert_eq!(code, "soapenv:Client");
    let (code, _) = post_soap(&sim, "<a><b></a>".into()).await.fault();
    assert_eq!(code, "soapenv:Client");
    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>";
    let (code, _) = post_soap(&sim, doctype.into()).await.fault();
    assert_eq!(code, "soapenv:Client");
    let (code, message) = soap(
        &sim,
        &session,
        &format!("<retrieve xmlns=\"{METADATA_NS}\"/>"),
    )
    .await
    .fault();
    assert_eq!(code, "soapenv:Client");
    assert_eq!(
        message,
        "No operation available for request {http://soap.sforce.com/2006/04/metadata}retrieve, please check the WSDL for the service."
    );
    let empty_body = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\"><soapenv:Body/></soapenv:Envelope>"
    );
    assert_eq!(
        post_soap(&sim, empty_body).await.fault().0,
        "soapenv:Client"
    );
    let bad_zip =
        format!("<deploy xmlns=\"{METADATA_NS}\"><ZipFile>@@@not base64@@@</ZipFile></deploy>");
    assert_eq!(
        soap(&sim, &session, &bad_zip).await.fault().0,
        "soapenv:Client"
    );
    let bad_level = Deploy {
        test_level: Some("RunEverything"),
        ..Deploy::of(Vec::new())
    };
    let (code, message) = soap(&sim, &session, &bad_level.body()).await.fault();
    assert_eq!(code, "soapenv:Client");
    assert!(message.contains("TestLevel"), "{message}");
    let bad_type = format!(
        "<readMetadata xmlns=\"{METADATA_NS}\"><type>Nonsense</type><fullNames>x</fullNames></readMetadata>"
    );
    assert_eq!(
        soap(&sim, &session, &bad_type).await.fault().0,
        "sf:INVALID_TYPE"
    );
    let bad_bool = format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>x</asyncProcessId>\
         <includeDetails>maybe</includeDetails></checkDeployStatus>"
    );
    assert_eq!(
        soap(&sim, &session, &bad_bool).await.fault().0,
        "soapenv:Client"
    );
    // A deploy of a zip escaping its root is accepted, then fails.
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("../../etc/passwd", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"x").unwrap();
        zip.finish().unwrap().into_inner()
    };
    let id = deploy(&sim, &session, &Deploy::of(zip)).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    // Garbage to the token endpoint.
    let response = client()
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The server is still fine.
    assert_eq!(
        soap(&sim, &session, &list_profiles_body()).await.status,
        StatusCode::OK
    );
    sim.stop().await;
}

// ---------------------------------------------------------------------------------------
// Heroku Platform API

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

// ---------------------------------------------------------------------------------------
// Admin API and configuration

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

// ---------------------------------------------------------------------------------------
// Issue 13: what real clients send and what real orgs do

/// POSTs a SOAP envelope to a path of the sim (not only `/services/Soap/m/66.0`).
async fn soap_at(sim: &SimOrg, path: &str, session: &str, body: &str) -> SoapReply {
    let response = client()
        .post(format!("{}{path}", sim.base_url()))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "\"\"")
        .body(envelope(session, body))
        .send()
        .await
        .unwrap();
    SoapReply {
        status: response.status(),
        content_type: String::new(),
        text: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn the_metadata_endpoint_answers_every_url_form_clients_use() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let org15 = &sim.org_id()[..15];
    // A trailing slash; `metadataServerUrl`'s org id suffix (15 characters, as the login
    // result gives it); simple-salesforce's `deployRequest` and `deployRequest/{id}`.
    for path in [
        "/services/Soap/m/66.0/".to_owned(),
        format!("/services/Soap/m/66.0/{org15}"),
        "/services/Soap/m/59.0/deployRequest".to_owned(),
    ] {
        let reply = soap_at(&sim, &path, &session, &list_profiles_body()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert!(
            reply.body().is(METADATA_NS, "listMetadataResponse"),
            "{path}"
        );
    }
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    let body = format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>{id}</asyncProcessId>\
         <includeDetails>true</includeDetails></checkDeployStatus>"
    );
    let path = format!("/services/Soap/m/59.0/deployRequest/{id}");
    let reply = soap_at(&sim, &path, &session, &body).await;
    assert_eq!(
        reply.result().child_text(METADATA_NS, "id"),
        Some(id.as_str())
    );
    sim.stop().await;
}

#[tokio::test]
async fn the_query_resource_answers_with_a_trailing_slash() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    sim.set_login_ip_ranges("Admin", vec![range("1.2.3.4", "1.2.3.4")]);
    let response = client()
        .get(format!(
            "{}/services/data/v66.0/query/?q=SELECT+Id+FROM+SetupAuditTrail",
            sim.base_url()
        ))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["totalSize"], 1);
    sim.stop().await;
}

#[tokio::test]
async fn unknown_rest_paths_answer_salesforces_error_array() {
    let sim = start(config()).await;
    let response = client()
        .get(format!("{}/services/data/v66.0/nope", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }])
    );
    sim.stop().await;
}

#[tokio::test]
async fn soap_booleans_are_read_leniently() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let body = Deploy {
        check_only: true,
        ..Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])])
    }
    .body()
    // What simple-salesforce's template makes of Python's True/False.
    .replace("<checkOnly>true</checkOnly>", "<checkOnly>True</checkOnly>")
    .replace(
        "<ignoreWarnings>false</ignoreWarnings>",
        "<ignoreWarnings>False</ignoreWarnings>",
    )
    .replace(
        "<rollbackOnError>true</rollbackOnError>",
        "<rollbackOnError> 1 </rollbackOnError>",
    )
    .replace(
        "<singlePackage>true</singlePackage>",
        "<singlePackage>TRUE</singlePackage>",
    );
    let reply = soap(&sim, &session, &body).await;
    let id = reply
        .result()
        .child_text(METADATA_NS, "id")
        .unwrap()
        .to_owned();
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "checkOnly"), Some("true"));
    assert_eq!(
        result.child_text(METADATA_NS, "rollbackOnError"),
        Some("true")
    );
    assert_eq!(
        result.child_text(METADATA_NS, "ignoreWarnings"),
        Some("false")
    );
    // Not a boolean in any spelling: still a fault.
    let bad = Deploy::profiles(&[("Admin", Vec::new())])
        .body()
        .replace("<checkOnly>false</checkOnly>", "<checkOnly>yes</checkOnly>");
    assert_eq!(soap(&sim, &session, &bad).await.fault().0, "soapenv:Client");
    sim.stop().await;
}

#[tokio::test]
async fn an_out_of_order_profile_file_fails_the_deploy() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let profile = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Profile xmlns=\"{METADATA_NS}\">\
         <loginIpRanges><endAddress>1.2.3.4</endAddress><startAddress>1.2.3.4</startAddress>\
         </loginIpRanges><custom>false</custom></Profile>"
    );
    let package = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Package xmlns=\"{METADATA_NS}\"><types>\
         <members>Admin</members><name>Profile</name></types><version>66.0</version></Package>"
    );
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("package.xml", options).unwrap();
        zip.write_all(package.as_bytes()).unwrap();
        zip.start_file("profiles/Admin.profile", options).unwrap();
        zip.write_all(profile.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    };
    let id = deploy(&sim, &session, &Deploy::of(zip)).await;
    let (_, result) = poll(&sim, &session, &id).await;
    assert_eq!(result.child_text(METADATA_NS, "status"), Some("Failed"));
    let failures = failures(&result);
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].child_text(METADATA_NS, "problem"),
        Some("Error parsing file: Element custom invalid at this location in type Profile")
    );
    assert!(
        sim.login_ip_ranges("Admin").unwrap().is_empty(),
        "nothing applied"
    );
    sim.stop().await;
}

#[tokio::test]
async fn an_org_runs_one_deploy_at_a_time_and_queues_the_rest() {
    let sim = start(config()).await;
    sim.set_deploy_timing(Duration::from_millis(20), Duration::from_millis(400));
    let session = login(&sim).await;
    let first = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.1.1.1", "1.1.1.1")])]),
    )
    .await;
    let second = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Standard", vec![range("2.2.2.2", "2.2.2.2")])]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = |result: &Element| result.child_text(METADATA_NS, "status").unwrap().to_owned();
    assert_eq!(
        status(&check_status(&sim, &session, &first).await),
        "InProgress"
    );
    assert_eq!(
        status(&check_status(&sim, &session, &second).await),
        "Pending",
        "the second deploy waits for the first"
    );
    let (_, first_result) = poll(&sim, &session, &first).await;
    let (seen, second_result) = poll(&sim, &session, &second).await;
    assert_eq!(seen.last().map(String::as_str), Some("Succeeded"));
    let date = |result: &Element, name: &str| {
        chrono::DateTime::parse_from_rfc3339(result.child_text(METADATA_NS, name).unwrap()).unwrap()
    };
    assert!(
        date(&second_result, "startDate") >= date(&first_result, "completedDate"),
        "the second started after the first completed"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_deploy_is_stamped_when_it_finished_not_when_it_was_noticed() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let id = deploy(
        &sim,
        &session,
        &Deploy::profiles(&[("Admin", vec![range("1.2.3.4", "1.2.3.4")])]),
    )
    .await;
    // Finished after ~120 ms; nobody asks until well after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let result = check_status(&sim, &session, &id).await;
    let completed = result
        .child_text(METADATA_NS, "completedDate")
        .unwrap()
        .to_owned();
    let audit = sim.audit_trail();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0]
            .created_date
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        completed
    );
    let listed = soap(&sim, &session, &list_profiles_body()).await.body();
    let admin = listed
        .children
        .iter()
        .find(|r| r.child_text(METADATA_NS, "fullName") == Some("Admin"))
        .unwrap();
    assert_eq!(
        admin.child_text(METADATA_NS, "lastModifiedDate"),
        Some(completed.as_str())
    );
    sim.stop().await;
}

#[tokio::test]
async fn describe_metadata_has_the_wsdl_shape() {
    let sim = start(config()).await;
    let session = login(&sim).await;
    let body = format!(
        "<describeMetadata xmlns=\"{METADATA_NS}\"><asOfVersion>66.0</asOfVersion></describeMetadata>"
    );
    let reply = soap(&sim, &session, &body).await;
    assert!(reply.body().is(METADATA_NS, "describeMetadataResponse"));
    let result = reply.result();
    let mut order = names(&result);
    order.dedup();
    assert_eq!(
        order,
        [
            "metadataObjects",
            "organizationNamespace",
            "partialSaveAllowed",
            "testRequired"
        ]
    );
    let profile = result
        .children_named(METADATA_NS, "metadataObjects")
        .find(|o| o.child_text(METADATA_NS, "xmlName") == Some("Profile"))
        .unwrap();
    assert_eq!(
        names(profile),
        ["directoryName", "inFolder", "metaFile", "suffix", "xmlName"]
    );
    assert_eq!(
        profile.child_text(METADATA_NS, "directoryName"),
        Some("profiles")
    );
    assert_eq!(
        result.child_text(METADATA_NS, "testRequired"),
        Some("false")
    );
    sim.stop().await;
}

#[tokio::test]
async fn tls_serves_https_with_a_certificate_its_ca_vouches_for() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = TlsMaterial::generate().unwrap();
    let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap();
    let sim = SimOrg::start_tls(config(), 0, tls).await.unwrap();
    assert!(
        sim.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        sim.base_url()
    );
    let trusting = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let response = trusting
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", sign(key(), &good_claims()).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["instance_url"], sim.base_url());
    // A client that does not trust the CA is refused by its own verification.
    let stranger = client()
        .get(format!("{}/services/data/v66.0/query", sim.base_url()))
        .send()
        .await;
    assert!(
        stranger.is_err(),
        "an untrusted certificate must not verify"
    );
    sim.stop().await;
}

/// A `multipart/form-data` body as jsforce's `deployRest` sends it: the zip as `file`, the
/// options as `entity_content`.
fn rest_deploy_body(zip: &[u8], options: &Value) -> (String, Vec<u8>) {
    let boundary = "----ipguard-sim-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"package.xml\"\r\n\
             Content-Type: application/zip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(zip);
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"entity_content\"\r\n\
             Content-Type: application/json\r\n\r\n{}\r\n--{boundary}--\r\n",
            json!({ "deployOptions": options })
        )
        .as_bytes(),
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn the_rest_deploy_resource_queues_like_soap_and_reports_in_json() {
    let sim = start(SimConfig {
        pending_for: Duration::from_millis(200),
        in_progress_for: Duration::from_millis(200),
        ..config()
    })
    .await;
    let session = login(&sim).await;
    let target = vec![range("52.1.2.8", "52.1.2.15")];
    let zip = Deploy::profiles(&[("Custom%3A Support", target.clone())]).zip;
    let (content_type, body) = rest_deploy_body(
        &zip,
        &json!({"rollbackOnError": true, "singlePackage": true}),
    );
    let url = format!(
        "{}/services/data/v66.0/metadata/deployRequest",
        sim.base_url()
    );
    let submitted = client()
        .post(&url)
        .bearer_auth(&session)
        .header("content-type", content_type.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::CREATED);
    let submitted: Value = submitted.json().await.unwrap();
    let id = submitted["id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("0Af") && ids::is_valid_18(&id),
        "{submitted}"
    );
    assert_eq!(submitted["deployResult"]["status"], "Pending");
    assert_eq!(submitted["deployResult"]["done"], false);
    assert_eq!(submitted["deployOptions"]["rollbackOnError"], true);

    // the same job the SOAP side sees, finished and applied
    let (_, soap_result) = poll(&sim, &session, &id).await;
    assert_eq!(
        soap_result.child_text(METADATA_NS, "status"),
        Some("Succeeded")
    );
    let status: Value = client()
        .get(format!("{url}/{id}?includeDetails=true"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["id"], id.as_str());
    assert_eq!(status["deployResult"]["status"], "Succeeded");
    assert_eq!(status["deployResult"]["done"], true);
    assert_eq!(status["deployResult"]["success"], true);
    let successes = status["deployResult"]["details"]["componentSuccesses"]
        .as_array()
        .unwrap();
    assert!(
        successes
            .iter()
            .any(|s| s["fullName"] == "Custom%3A Support"),
        "{status:#}"
    );
    assert_eq!(
        keys_of(&sim.login_ip_ranges("Custom%3A Support").unwrap()),
        keys_of(&target)
    );

    // no session → 401 in Salesforce's REST error shape; an unknown id → 404; not multipart → 400
    let refused = client()
        .post(&url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused[0]["errorCode"], "INVALID_SESSION_ID");
    let unknown = client()
        .get(format!("{url}/0Af000000000000AAA"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let not_multipart = client()
        .post(&url)
        .bearer_auth(&session)
        .json(&json!({"deployOptions": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.count("deployRequest"), 5);
}
