//! `POST /services/Soap/m/{version}` — the Metadata API's SOAP 1.1 endpoint: the envelope in
//! (SessionHeader and the one Body operation, matched by namespace URI), the operation's
//! response or a fault out. Responses copy the real samples in `tests/fixtures/salesforce/metadata-api/`:
//! a default Metadata namespace on the Envelope; faults with
//! `xmlns:sf="http://soap.sforce.com/2006/04/metadata"`, `sf:CODE`, `CODE: message`, no
//! detail, HTTP 500. Every value written goes through `xml::escape`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use base64::Engine;
use chrono::{DateTime, Utc};

use super::FailureKind;
use super::deploy::{self, DeployOptions, Message};
use super::oauth::failure_outcome;
use super::side_doors;
use super::state::{Actor, DeployJob, Phase, Shared, SimState};
use ipguard_wire::xml::{self, Element, METADATA_NS, SOAP_ENV_NS, XSI_NS};

/// The Metadata API's limit on CRUD-style calls such as readMetadata.
pub(crate) const MAX_READ_NAMES: usize = 10;

const INVALID_SESSION: &str = "Invalid Session ID found in SessionHeader: Illegal Session";
pub(super) const TEST_LEVELS: [&str; 5] = [
    "NoTestRun",
    "RunSpecifiedTests",
    "RunLocalTests",
    "RunAllTestsInOrg",
    "RunRelevantTests",
];
/// API names of standard profiles (their `custom` is false).
const STANDARD_PROFILES: [&str; 9] = [
    "Admin",
    "Standard",
    "ReadOnly",
    "ContractManager",
    "SolutionManager",
    "MarketingProfile",
    "StandardAul",
    "HighVolumePortal",
    "PlatformPortal",
];

/// A response and what the call log says about it.
pub(crate) struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
    outcome: String,
}

impl Reply {
    fn ok(inner: &str) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "text/xml;charset=UTF-8",
            body: envelope(inner, ""),
            outcome: "ok".to_owned(),
        }
    }

    fn ok_with_xsi(inner: &str) -> Self {
        Self {
            body: envelope(inner, &format!(" xmlns:xsi=\"{XSI_NS}\"")),
            ..Self::ok("")
        }
    }

    /// A Metadata API fault: `sf:CODE` / `CODE: message`, HTTP 500.
    pub(crate) fn fault(code: &str, message: &str) -> Self {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\" \
             xmlns:sf=\"{METADATA_NS}\"><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>\
             <faultstring>{code}: {message}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
            code = xml::escape(code),
            message = xml::escape(message),
        );
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            content_type: "text/xml;charset=UTF-8",
            body,
            outcome: code.to_owned(),
        }
    }

    /// A SOAP `Client` fault: the request itself is unusable.
    fn client_fault(message: &str) -> Self {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\">\
             <soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>\
             <faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
            xml::escape(message),
        );
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            content_type: "text/xml;charset=UTF-8",
            body,
            outcome: "soapenv:Client".to_owned(),
        }
    }

    fn invalid_session() -> Self {
        Self::fault("INVALID_SESSION_ID", INVALID_SESSION)
    }

    fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type(self.content_type)
            .body(self.body)
    }
}

fn envelope(inner: &str, extra_namespaces: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\" \
         xmlns=\"{METADATA_NS}\"{extra_namespaces}><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
    )
}

/// An injected HTTP-level failure (also used by the token endpoint).
pub(crate) fn http_failure(kind: FailureKind) -> HttpResponse {
    match kind {
        FailureKind::Http503 => HttpResponse::ServiceUnavailable()
            .content_type("text/html;charset=UTF-8")
            .body(
                "<html><head><title>Service Unavailable</title></head><body>\
                 <h1>Service Unavailable</h1><p>The server is temporarily unable to service \
                 your request due to maintenance downtime or capacity problems. Please try \
                 again later.</p></body></html>",
            ),
        _ => HttpResponse::InternalServerError()
            .content_type("text/plain;charset=UTF-8")
            .body("Internal Server Error"),
    }
}

pub(crate) async fn handle(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let latency = shared.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let request = parse_request(&body);
    let operation = match &request {
        Ok((_, op)) => op.name.clone(),
        Err(_) => "soap".to_owned(),
    };
    let mut state = shared.lock();
    if let Some(kind) = state.take_failure(true) {
        state.record(&operation, failure_outcome(kind));
        return match kind {
            FailureKind::Http500 | FailureKind::Http503 => http_failure(kind),
            FailureKind::RequestLimitExceeded => Reply::fault(
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            )
            .into_response(),
            FailureKind::DailyRequestLimitExceeded => {
                Reply::fault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                    .into_response()
            }
            FailureKind::ServerUnavailable => Reply::fault(
                "SERVER_UNAVAILABLE",
                "Server is temporarily unavailable, please try again later.",
            )
            .into_response(),
            FailureKind::InvalidSession => {
                if let Ok((Some(session), _)) = &request {
                    state.sessions.remove(session);
                }
                Reply::invalid_session().into_response()
            }
        };
    }
    let reply = match request {
        Err(reply) => reply,
        Ok((session, op)) => authorise(&mut state, session.as_deref())
            .and_then(|()| dispatch(&mut state, &op))
            .unwrap_or_else(|reply| reply),
    };
    state.record(&operation, &reply.outcome);
    reply.into_response()
}

/// Envelope → (sessionId, the Body's operation element).
fn parse_request(body: &[u8]) -> Result<(Option<String>, Element), Reply> {
    let root = xml::parse(body).map_err(|e| Reply::client_fault(&e.to_string()))?;
    if !root.is(SOAP_ENV_NS, "Envelope") {
        return Err(Reply::client_fault(
            "Expected a SOAP 1.1 Envelope in namespace http://schemas.xmlsoap.org/soap/envelope/",
        ));
    }
    let session = root
        .child(SOAP_ENV_NS, "Header")
        .and_then(|h| h.child(METADATA_NS, "SessionHeader"))
        .and_then(|s| s.child_text(METADATA_NS, "sessionId"))
        .map(str::to_owned);
    let operation = root
        .child(SOAP_ENV_NS, "Body")
        .and_then(|b| b.children.first())
        .cloned()
        .ok_or_else(|| Reply::client_fault("The SOAP Body holds no operation"))?;
    Ok((session, operation))
}

/// The session must exist; with `session_expires_after_calls` it dies after N calls.
fn authorise(state: &mut SimState, session: Option<&str>) -> Result<(), Reply> {
    if state.use_session(session) {
        Ok(())
    } else {
        Err(Reply::invalid_session())
    }
}

fn dispatch(state: &mut SimState, op: &Element) -> Result<Reply, Reply> {
    if op.ns.as_deref() != Some(METADATA_NS) {
        return Err(no_operation(op));
    }
    match op.name.as_str() {
        "listMetadata" => Ok(list_metadata(state, op)),
        "readMetadata" => read_metadata(state, op),
        "deploy" => deploy(state, op),
        "checkDeployStatus" => check_deploy_status(state, op),
        "describeMetadata" => Ok(describe_metadata(state)),
        _ => Err(no_operation(op)),
    }
}

fn no_operation(op: &Element) -> Reply {
    Reply::client_fault(&format!(
        "No operation available for request {{{}}}{}, please check the WSDL for the service.",
        op.ns.as_deref().unwrap_or_default(),
        op.name
    ))
}

fn date(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn element(out: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        out.push_str(&format!("<{name}></{name}>"));
    } else {
        out.push_str(&format!("<{name}>{}</{name}>", xml::escape(value)));
    }
}

fn list_metadata(state: &SimState, op: &Element) -> Reply {
    let wants_profiles = op
        .children_named(METADATA_NS, "queries")
        .any(|q| q.child_text(METADATA_NS, "type") == Some("Profile"));
    if !wants_profiles || state.profiles.is_empty() {
        return Reply::ok("<listMetadataResponse/>");
    }
    let mut out = String::from("<listMetadataResponse>");
    for profile in &state.profiles {
        let (modifier_id, modifier_name) = state.user_name(profile.last_modified_by);
        let (creator_id, creator_name) = state.user_name(Actor::Admin);
        out.push_str("<result>");
        element(&mut out, "createdById", creator_id);
        element(&mut out, "createdByName", creator_name);
        element(&mut out, "createdDate", &date(profile.created));
        element(
            &mut out,
            "fileName",
            &format!("profiles/{}.profile", profile.full_name),
        );
        element(&mut out, "fullName", &profile.full_name);
        element(&mut out, "id", &profile.id);
        element(&mut out, "lastModifiedById", modifier_id);
        element(&mut out, "lastModifiedByName", modifier_name);
        element(&mut out, "lastModifiedDate", &date(profile.last_modified));
        element(&mut out, "manageableState", "unmanaged");
        element(&mut out, "type", "Profile");
        out.push_str("</result>");
    }
    out.push_str("</listMetadataResponse>");
    Reply::ok(&out)
}

/// The metadata types the simulated org knows, as DescribeMetadataObject
/// (childXmlNames, directoryName, inFolder, metaFile, suffix, xmlName). A real org lists
/// hundreds; these are the ones the sim reads or deploys. Directories and suffixes are
/// official: `extlClntAppOauthPolicies`/`.ecaOauthPlcy` ("ExtlClntAppOauthConfigurablePolicies
/// components have the suffix .ecaOauthPlcy and are stored in the extlClntAppOauthPolicies
/// folder"), `connectedApps`/`.connectedApp`, `settings`/`.settings` (Metadata API Developer
/// Guide; /work/notes/issue16-facts.md §3, §5, §6).
const DESCRIBED_TYPES: [(&str, &str, &str); 4] = [
    ("ConnectedApp", "connectedApps", "connectedApp"),
    (
        "ExtlClntAppOauthConfigurablePolicies",
        "extlClntAppOauthPolicies",
        "ecaOauthPlcy",
    ),
    ("Profile", "profiles", "profile"),
    ("Settings", "settings", "settings"),
];

/// describeMetadata: DescribeMetadataResult in WSDL order. `testRequired` follows the org
/// kind (production orgs run tests on deploy); `partialSaveAllowed` is true as in every org.
fn describe_metadata(state: &SimState) -> Reply {
    let flag = |b: bool| if b { "true" } else { "false" };
    let mut out = String::from("<describeMetadataResponse><result>");
    for (xml_name, directory, suffix) in DESCRIBED_TYPES {
        out.push_str("<metadataObjects>");
        element(&mut out, "directoryName", directory);
        element(&mut out, "inFolder", "false");
        element(&mut out, "metaFile", "false");
        element(&mut out, "suffix", suffix);
        element(&mut out, "xmlName", xml_name);
        out.push_str("</metadataObjects>");
    }
    element(&mut out, "organizationNamespace", "");
    element(&mut out, "partialSaveAllowed", "true");
    element(&mut out, "testRequired", flag(state.production));
    out.push_str("</result></describeMetadataResponse>");
    Reply::ok(&out)
}

fn read_metadata(state: &SimState, op: &Element) -> Result<Reply, Reply> {
    let kind = op.child_text(METADATA_NS, "type").unwrap_or_default();
    let names: Vec<&str> = op
        .children_named(METADATA_NS, "fullNames")
        .map(|n| n.text.trim())
        .collect();
    if let Some(reply) = read_settings_or_app_policies(state, kind, &names) {
        return Ok(reply);
    }
    if kind != "Profile" {
        return Err(Reply::fault(
            "INVALID_TYPE",
            &format!("Unknown type name '{kind}' specified"),
        ));
    }
    if names.len() > MAX_READ_NAMES {
        return Err(Reply::fault(
            "EXCEEDED_ID_LIMIT",
            &format!(
                "record limit reached. cannot submit more than {MAX_READ_NAMES} records in this operation"
            ),
        ));
    }
    let mut out = String::from("<readMetadataResponse><result>");
    for name in names {
        let Some(profile) = state.profile(name) else {
            // A name the org does not know reads back as an empty record, not a fault.
            out.push_str("<records xsi:type=\"Profile\"/>");
            continue;
        };
        out.push_str("<records xsi:type=\"Profile\">");
        element(&mut out, "fullName", &profile.full_name);
        let custom = !STANDARD_PROFILES.contains(&profile.full_name.as_str());
        element(&mut out, "custom", if custom { "true" } else { "false" });
        for range in &profile.ranges {
            out.push_str("<loginIpRanges>");
            if let Some(description) = range.description() {
                element(&mut out, "description", description);
            }
            element(&mut out, "endAddress", &range.end().to_string());
            element(&mut out, "startAddress", &range.start().to_string());
            out.push_str("</loginIpRanges>");
        }
        element(&mut out, "userLicense", "Salesforce");
        out.push_str("</records>");
    }
    out.push_str("</result></readMetadataResponse>");
    Ok(Reply::ok_with_xsi(&out))
}

/// readMetadata of `SecuritySettings` (only `Security` exists), of
/// `ExtlClntAppOauthConfigurablePolicies` (`<App>_oauthPlcy` per External Client App) and of
/// legacy `ConnectedApp`s (records in `side_doors/`); `None` for any other type. Unknown
/// names read back as empty records, like profiles.
fn read_settings_or_app_policies(state: &SimState, kind: &str, names: &[&str]) -> Option<Reply> {
    let mut out = String::from("<readMetadataResponse><result>");
    match kind {
        "SecuritySettings" => {
            for name in names {
                if *name == ipguard_wire::side_doors::SECURITY_SETTINGS_NAME {
                    side_doors::write_security_settings(&mut out, state);
                } else {
                    out.push_str("<records xsi:type=\"SecuritySettings\"/>");
                }
            }
        }
        "ExtlClntAppOauthConfigurablePolicies" => {
            for name in names {
                let app = state
                    .external_client_apps
                    .iter()
                    .find(|app| ipguard_wire::side_doors::eca_policies_name(&app.name) == *name);
                match app {
                    Some(app) => side_doors::write_eca_policies(&mut out, app),
                    None => {
                        out.push_str("<records xsi:type=\"ExtlClntAppOauthConfigurablePolicies\"/>")
                    }
                }
            }
        }
        "ConnectedApp" => {
            for name in names {
                match state.connected_app_record(name) {
                    Some(app) => side_doors::write_connected_app(&mut out, app),
                    None => out.push_str("<records xsi:type=\"ConnectedApp\"/>"),
                }
            }
        }
        _ => return None,
    }
    out.push_str("</result></readMetadataResponse>");
    Some(Reply::ok_with_xsi(&out))
}

/// An `xsd:boolean`, read the way Salesforce's parser does: `true`/`false`/`1`/`0` in any
/// letter case and with surrounding whitespace (clients that format a Python `bool` send
/// `True`/`False`). Absent or empty is false.
fn boolean(op: &Element, name: &str) -> Result<bool, Reply> {
    let Some(text) = op.child_text(METADATA_NS, name).map(str::trim) else {
        return Ok(false);
    };
    if text.is_empty() || text == "0" || text.eq_ignore_ascii_case("false") {
        Ok(false)
    } else if text == "1" || text.eq_ignore_ascii_case("true") {
        Ok(true)
    } else {
        Err(Reply::client_fault(&format!(
            "Unable to parse '{text}' as a boolean value for {name}"
        )))
    }
}

fn deploy(state: &mut SimState, op: &Element) -> Result<Reply, Reply> {
    let encoded: String = op
        .child_text(METADATA_NS, "ZipFile")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let zip = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| {
            Reply::client_fault(&format!("Unable to parse ZipFile as base64Binary: {e}"))
        })?;
    let empty = Element::default();
    let options = op.child(METADATA_NS, "DeployOptions").unwrap_or(&empty);
    let test_level = options
        .child_text(METADATA_NS, "testLevel")
        .map(str::to_owned);
    if let Some(level) = &test_level
        && !TEST_LEVELS.contains(&level.as_str())
    {
        return Err(Reply::client_fault(&format!(
            "'{level}' is not a valid value for the enum 'TestLevel'"
        )));
    }
    let options = DeployOptions {
        check_only: boolean(options, "checkOnly")?,
        ignore_warnings: boolean(options, "ignoreWarnings")?,
        rollback_on_error: boolean(options, "rollbackOnError")?,
        single_package: boolean(options, "singlePackage")?,
        test_level,
    };
    if state.production && options.test_level.as_deref() == Some("NoTestRun") {
        return Err(Reply::fault(
            "INVALID_OPERATION",
            "testLevel of NoTestRun cannot be used in production organizations",
        ));
    }
    let package = deploy::read_package(&zip);
    let id = state.enqueue_deploy(options, package);
    Ok(Reply::ok(&format!(
        "<deployResponse><result><done>false</done><id>{}</id><state>Queued</state></result></deployResponse>",
        xml::escape(&id)
    )))
}

fn check_deploy_status(state: &SimState, op: &Element) -> Result<Reply, Reply> {
    let id = op
        .child_text(METADATA_NS, "asyncProcessId")
        .unwrap_or_default();
    let include_details = boolean(op, "includeDetails")?;
    let job = state
        .deploy(id)
        .ok_or_else(|| Reply::fault("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"))?;
    let mut out = String::from("<checkDeployStatusResponse><result>");
    deploy_result(&mut out, state, job, include_details);
    out.push_str("</result></checkDeployStatusResponse>");
    Ok(Reply::ok(&out))
}

/// A DeployResult in the order of the samples (and the WSDL).
fn deploy_result(out: &mut String, state: &SimState, job: &DeployJob, include_details: bool) {
    let flag = |b: bool| if b { "true" } else { "false" };
    let counts = job.counts();
    element(out, "checkOnly", flag(job.options.check_only));
    if let Some(completed) = job.completed_date {
        element(out, "completedDate", &date(completed));
    }
    element(out, "createdBy", state.user_id15());
    element(out, "createdByName", super::state::INTEGRATION_USER_NAME);
    element(out, "createdDate", &date(job.created_date));
    out.push_str("<details>");
    if let (true, Phase::Done(evaluation), Some(completed)) =
        (include_details, &job.phase, job.completed_date)
    {
        for failure in &evaluation.failures {
            deploy_message(out, "componentFailures", failure, completed);
        }
        for success in &evaluation.successes {
            deploy_message(out, "componentSuccesses", success, completed);
        }
    }
    out.push_str(
        "<runTestResult><numFailures>0</numFailures><numTestsRun>0</numTestsRun>\
         <totalTime>0.0</totalTime></runTestResult></details>",
    );
    element(out, "done", flag(counts.done));
    element(out, "id", &job.id);
    element(out, "ignoreWarnings", flag(job.options.ignore_warnings));
    element(out, "lastModifiedDate", &date(job.last_modified()));
    element(out, "numberComponentErrors", &counts.errors.to_string());
    element(
        out,
        "numberComponentsDeployed",
        &counts.deployed.to_string(),
    );
    element(out, "numberComponentsTotal", &counts.total.to_string());
    element(out, "numberTestErrors", "0");
    element(out, "numberTestsCompleted", "0");
    element(out, "numberTestsTotal", "0");
    element(out, "rollbackOnError", flag(job.options.rollback_on_error));
    element(out, "runTestsEnabled", "false");
    if let Some(start) = job.start_date {
        element(out, "startDate", &date(start));
    }
    element(out, "status", job.status());
    element(out, "success", flag(counts.success));
}

fn deploy_message(out: &mut String, tag: &str, message: &Message, created: DateTime<Utc>) {
    let flag = |b: bool| if b { "true" } else { "false" };
    out.push_str(&format!("<{tag}>"));
    element(out, "changed", flag(message.changed));
    element(out, "componentType", &message.component_type);
    element(out, "created", flag(message.created));
    element(out, "createdDate", &date(created));
    element(out, "deleted", flag(message.deleted));
    element(out, "fileName", &message.file_name);
    element(out, "fullName", &message.full_name);
    if let Some(problem) = &message.problem {
        element(out, "problem", problem);
        element(out, "problemType", "Error");
    }
    element(out, "success", flag(message.success));
    out.push_str(&format!("</{tag}>"));
}
