//! Metadata API request bodies and response readers (pure: no I/O).
//!
//! Element order follows the v66.0 WSDL; responses are read by namespace URI and local name.

use base64::Engine;

use super::profile::{self, ProfileName};
use crate::ranges::LoginIpRange;
use crate::xml::{self, Element, METADATA_NS, XSI_NS};

/// Salesforce reads at most this many components per `readMetadata` call.
pub const READ_BATCH: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected Metadata API response: {0}")]
pub struct ResponseError(pub String);

fn unexpected(what: impl Into<String>) -> ResponseError {
    ResponseError(what.into())
}

pub fn list_metadata_body(metadata_type: &str, api_version: &str) -> String {
    format!(
        "<listMetadata xmlns=\"{METADATA_NS}\"><queries><type>{}</type></queries>\
<asOfVersion>{}</asOfVersion></listMetadata>",
        xml::escape(metadata_type),
        xml::escape(api_version)
    )
}

pub fn read_metadata_body(names: &[ProfileName]) -> String {
    let mut body = format!("<readMetadata xmlns=\"{METADATA_NS}\"><type>Profile</type>");
    for name in names {
        body.push_str(&format!(
            "<fullNames>{}</fullNames>",
            xml::escape(name.as_str())
        ));
    }
    body.push_str("</readMetadata>");
    body
}

/// `readMetadata` of any type by full names (settings, External Client App policies).
pub fn read_metadata_of_body(metadata_type: &str, full_names: &[&str]) -> String {
    let mut body = format!(
        "<readMetadata xmlns=\"{METADATA_NS}\"><type>{}</type>",
        xml::escape(metadata_type)
    );
    for name in full_names {
        body.push_str(&format!("<fullNames>{}</fullNames>", xml::escape(name)));
    }
    body.push_str("</readMetadata>");
    body
}

/// `deploy` with DeployOptions in WSDL order. `testLevel` is deliberately omitted: production
/// orgs refuse `NoTestRun`, and a package without Apex runs no tests by default (docs/contract.md §5 rule 4).
pub fn deploy_body(zip: &[u8], check_only: bool) -> String {
    let zip = base64::engine::general_purpose::STANDARD.encode(zip);
    format!(
        "<deploy xmlns=\"{METADATA_NS}\"><ZipFile>{zip}</ZipFile><DeployOptions>\
<allowMissingFiles>false</allowMissingFiles>\
<autoUpdatePackage>false</autoUpdatePackage>\
<checkOnly>{check_only}</checkOnly>\
<ignoreWarnings>false</ignoreWarnings>\
<performRetrieve>false</performRetrieve>\
<purgeOnDelete>false</purgeOnDelete>\
<rollbackOnError>true</rollbackOnError>\
<singlePackage>true</singlePackage>\
</DeployOptions></deploy>"
    )
}

pub fn check_deploy_status_body(id: &DeployId) -> String {
    format!(
        "<checkDeployStatus xmlns=\"{METADATA_NS}\"><asyncProcessId>{}</asyncProcessId>\
<includeDetails>true</includeDetails></checkDeployStatus>",
        xml::escape(id.as_str())
    )
}

/// `FileProperties` of one listed component (only what ipguard uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedComponent {
    pub full_name: String,
    pub file_name: String,
    pub id: String,
}

pub fn read_list_metadata(body: &Element) -> Result<Vec<ListedComponent>, ResponseError> {
    expect(body, "listMetadataResponse")?;
    Ok(body
        .children_named(METADATA_NS, "result")
        .map(|r| ListedComponent {
            full_name: r
                .child_text(METADATA_NS, "fullName")
                .unwrap_or_default()
                .to_owned(),
            file_name: r
                .child_text(METADATA_NS, "fileName")
                .unwrap_or_default()
                .to_owned(),
            id: r
                .child_text(METADATA_NS, "id")
                .unwrap_or_default()
                .to_owned(),
        })
        .collect())
}

/// A profile as read: its full name and current login IP ranges (an absent list is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRecord {
    pub full_name: String,
    pub ranges: Vec<LoginIpRange>,
}

/// Records of a `readMetadata` response; records without a `fullName` (what Salesforce sends
/// for a name it does not know) are skipped, so callers notice the missing profile.
pub fn read_read_metadata(body: &Element) -> Result<Vec<ProfileRecord>, ResponseError> {
    named_records(body, "Profile")?
        .into_iter()
        .map(|record| {
            let full_name = record
                .child_text(METADATA_NS, "fullName")
                .unwrap_or_default();
            let ranges = profile::login_ip_ranges(record)
                .map_err(|e| unexpected(format!("profile {full_name}: {e}")))?
                .unwrap_or_default();
            Ok(ProfileRecord {
                full_name: full_name.to_owned(),
                ranges,
            })
        })
        .collect()
}

/// The records of a `readMetadata` response that carry a `fullName`, checked to be of
/// `kind` when typed (an unknown name reads back as a nil or empty record and is skipped).
fn named_records<'a>(body: &'a Element, kind: &str) -> Result<Vec<&'a Element>, ResponseError> {
    expect(body, "readMetadataResponse")?;
    let result = body
        .child(METADATA_NS, "result")
        .ok_or_else(|| unexpected("readMetadataResponse without result"))?;
    let mut records = Vec::new();
    for record in result.children_named(METADATA_NS, "records") {
        if record.is_nil() || record.child_text(METADATA_NS, "fullName").is_none() {
            continue;
        }
        if let Some(found) = record.attribute(Some(XSI_NS), "type") {
            let local = found.rsplit(':').next().unwrap_or(found);
            if local != kind {
                return Err(unexpected(format!(
                    "record of type {found}, expected {kind}"
                )));
            }
        }
        records.push(record);
    }
    Ok(records)
}

/// The org's Session Settings as `readMetadata('SecuritySettings', ['Security'])` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettingsRecord {
    /// "Enforce login IP ranges on every request" (`enforceIpRangesEveryRequest`; absent is
    /// false, Salesforce's default).
    pub enforce_ip_ranges_every_request: bool,
}

/// `None` when the org returned no `Security` record.
pub fn read_security_settings(
    body: &Element,
) -> Result<Option<SessionSettingsRecord>, ResponseError> {
    let records = named_records(body, "SecuritySettings")?;
    Ok(records.first().map(|record| SessionSettingsRecord {
        enforce_ip_ranges_every_request: record
            .child(METADATA_NS, "sessionSettings")
            .and_then(|s| s.child_text(METADATA_NS, "enforceIpRangesEveryRequest"))
            .is_some_and(|t| t.trim() == "true"),
    }))
}

/// An External Client App's OAuth policies (`ExtlClntAppOauthConfigurablePolicies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcaOauthPolicies {
    pub full_name: String,
    pub external_client_application: String,
    /// `Enforce`, `Bypass`, `Bypass_2factor`, `Enforce_RelaxRefresh`; `None` when unset.
    pub ip_relaxation_policy_type: Option<String>,
    /// `AdminApprovedPreAuthorized` or `AllSelfAuthorized`; `None` when unset.
    pub permitted_users_policy_type: Option<String>,
    /// Every field as read: a deploy replaces the whole component, so a change is written
    /// back over all of them (`side_doors::eca_oauth_policies`).
    pub record: Vec<Element>,
}

/// `None` when the org knows no policies by that name.
pub fn read_eca_oauth_policies(body: &Element) -> Result<Option<EcaOauthPolicies>, ResponseError> {
    let records = named_records(body, "ExtlClntAppOauthConfigurablePolicies")?;
    Ok(records.first().map(|record| {
        let text = |name| {
            record
                .child_text(METADATA_NS, name)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        EcaOauthPolicies {
            full_name: text("fullName").unwrap_or_default(),
            external_client_application: text("externalClientApplication").unwrap_or_default(),
            ip_relaxation_policy_type: text("ipRelaxationPolicyType"),
            permitted_users_policy_type: text("permittedUsersPolicyType"),
            record: record.children.clone(),
        }
    }))
}

/// A legacy connected app's `oauthPolicy/ipRelaxation` (`ENFORCE`, `BYPASS`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedAppPolicy {
    pub full_name: String,
    pub ip_relaxation: Option<String>,
    /// Every field as read (a deploy replaces the whole app; see `side_doors::connected_app`).
    pub record: Vec<Element>,
}

pub fn read_connected_app(body: &Element) -> Result<Option<ConnectedAppPolicy>, ResponseError> {
    let records = named_records(body, "ConnectedApp")?;
    Ok(records.first().map(|record| ConnectedAppPolicy {
        full_name: record
            .child_text(METADATA_NS, "fullName")
            .unwrap_or_default()
            .to_owned(),
        ip_relaxation: record
            .child(METADATA_NS, "oauthPolicy")
            .and_then(|p| p.child_text(METADATA_NS, "ipRelaxation"))
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        record: record.children.clone(),
    }))
}

/// The id of an asynchronous deploy (`0Af…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DeployId(String);

impl DeployId {
    pub fn parse(id: &str) -> Result<Self, ResponseError> {
        let id = id.trim();
        if (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(id.to_owned()))
        } else {
            Err(unexpected(format!("`{id}` is not a Salesforce id")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeployId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `deployResponse/result` (an AsyncResult): only the id matters, the state is read by polling.
pub fn read_deploy_response(body: &Element) -> Result<DeployId, ResponseError> {
    expect(body, "deployResponse")?;
    let id = body
        .child(METADATA_NS, "result")
        .and_then(|r| r.child_text(METADATA_NS, "id"))
        .ok_or_else(|| unexpected("deployResponse without result/id"))?;
    DeployId::parse(id)
}

/// `DeployStatus` (v66 has Finalizing and FinalizingFailed); unknown values are kept, not fatal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum DeployStatus {
    Pending,
    InProgress,
    Finalizing,
    FinalizingFailed,
    Succeeded,
    SucceededPartial,
    Failed,
    Canceling,
    Canceled,
    Other(String),
}

impl DeployStatus {
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "Pending" => Self::Pending,
            "InProgress" => Self::InProgress,
            "Finalizing" => Self::Finalizing,
            "FinalizingFailed" => Self::FinalizingFailed,
            "Succeeded" => Self::Succeeded,
            "SucceededPartial" => Self::SucceededPartial,
            "Failed" => Self::Failed,
            "Canceling" => Self::Canceling,
            "Canceled" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Finalizing => "Finalizing",
            Self::FinalizingFailed => "FinalizingFailed",
            Self::Succeeded => "Succeeded",
            Self::SucceededPartial => "SucceededPartial",
            Self::Failed => "Failed",
            Self::Canceling => "Canceling",
            Self::Canceled => "Canceled",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for DeployStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentFailure {
    pub component_type: String,
    pub file_name: String,
    pub full_name: String,
    pub problem: String,
}

impl std::fmt::Display for ComponentFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file_name, self.problem)
    }
}

/// The parts of a `DeployResult` ipguard acts on. Judged by `status`, never by counters
/// (`numberComponentErrors` can be 0 on a failed deploy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployResult {
    pub id: String,
    pub done: bool,
    pub status: DeployStatus,
    pub success: bool,
    pub check_only: bool,
    pub error_status_code: Option<String>,
    pub error_message: Option<String>,
    pub components_deployed: u32,
    pub components_total: u32,
    pub component_failures: Vec<ComponentFailure>,
}

impl DeployResult {
    /// Every failure message Salesforce gave, for the run record.
    pub fn failure_messages(&self) -> Vec<String> {
        let mut messages: Vec<String> = self
            .component_failures
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Some(message) = &self.error_message {
            let code = self.error_status_code.as_deref().unwrap_or("error");
            messages.push(format!("{code}: {message}"));
        }
        messages
    }
}

pub fn read_check_deploy_status(body: &Element) -> Result<DeployResult, ResponseError> {
    expect(body, "checkDeployStatusResponse")?;
    let r = body
        .child(METADATA_NS, "result")
        .ok_or_else(|| unexpected("checkDeployStatusResponse without result"))?;
    let text = |name| r.child_text(METADATA_NS, name).filter(|t| !t.is_empty());
    let flag = |name| text(name) == Some("true");
    let count = |name| text(name).and_then(|t| t.parse().ok()).unwrap_or(0);
    let status = text("status").ok_or_else(|| unexpected("DeployResult without status"))?;
    let component_failures = r
        .child(METADATA_NS, "details")
        .map(|d| {
            d.children_named(METADATA_NS, "componentFailures")
                .map(|f| {
                    let field = |name| {
                        f.child_text(METADATA_NS, name)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    ComponentFailure {
                        component_type: field("componentType"),
                        file_name: field("fileName"),
                        full_name: field("fullName"),
                        problem: field("problem"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(DeployResult {
        id: text("id").unwrap_or_default().to_owned(),
        done: flag("done"),
        status: DeployStatus::parse(status),
        success: flag("success"),
        check_only: flag("checkOnly"),
        error_status_code: text("errorStatusCode").map(str::to_owned),
        error_message: text("errorMessage").map(str::to_owned),
        components_deployed: count("numberComponentsDeployed"),
        components_total: count("numberComponentsTotal"),
        component_failures,
    })
}

fn expect(body: &Element, name: &str) -> Result<(), ResponseError> {
    if body.is(METADATA_NS, name) {
        Ok(())
    } else {
        Err(unexpected(format!(
            "expected {name}, got <{}> in namespace {:?}",
            body.name, body.ns
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::soap;

    fn fixture(name: &str) -> Element {
        let path = format!(
            "{}/tests/fixtures/salesforce/metadata-api/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let root = xml::parse(&bytes).unwrap();
        soap::body_child(&root).unwrap().clone()
    }

    #[test]
    fn real_deploy_response_gives_the_async_id() {
        let id = read_deploy_response(&fixture("deploy-response.xml")).unwrap();
        assert_eq!(id.as_str(), "0Af3B00001CMyfASAT");
    }

    #[test]
    fn real_deploy_statuses_parse() {
        let pending =
            read_check_deploy_status(&fixture("check-deploy-status-pending.xml")).unwrap();
        assert_eq!(
            (pending.status.clone(), pending.done),
            (DeployStatus::Pending, false)
        );
        let running =
            read_check_deploy_status(&fixture("check-deploy-status-inprogress.xml")).unwrap();
        assert_eq!(running.status, DeployStatus::InProgress);
        assert_eq!(
            (running.components_deployed, running.components_total),
            (2, 3)
        );
        let ok = read_check_deploy_status(&fixture("check-deploy-status-succeeded.xml")).unwrap();
        assert_eq!(
            (ok.status.clone(), ok.done, ok.success),
            (DeployStatus::Succeeded, true, true)
        );
        assert!(ok.component_failures.is_empty());
    }

    #[test]
    fn real_failed_deploy_keeps_its_failure_despite_zero_error_count() {
        let failed = read_check_deploy_status(&fixture("check-deploy-status-failed.xml")).unwrap();
        assert_eq!(failed.status, DeployStatus::Failed);
        assert_eq!(
            failed.failure_messages(),
            ["package.xml: No package.xml found"]
        );
        assert_eq!(failed.component_failures[0].component_type, "");
    }

    #[test]
    fn unknown_and_new_statuses_do_not_crash() {
        assert_eq!(
            DeployStatus::parse("FinalizingFailed"),
            DeployStatus::FinalizingFailed
        );
        assert_eq!(
            DeployStatus::parse("SomethingNew"),
            DeployStatus::Other("SomethingNew".into())
        );
    }

    #[test]
    fn many_component_failures_are_all_kept() {
        let doc = format!(
            "<checkDeployStatusResponse xmlns=\"{METADATA_NS}\"><result><details>\
             <componentFailures><fileName>profiles/A.profile</fileName><fullName>A</fullName><problem>p1</problem></componentFailures>\
             <componentFailures><fileName>profiles/B.profile</fileName><fullName>B</fullName><problem>p2</problem></componentFailures>\
             </details><done>true</done><errorStatusCode>UNKNOWN_EXCEPTION</errorStatusCode><errorMessage>boom</errorMessage>\
             <id>0Af000000000001AAA</id><status>Failed</status><success>false</success></result></checkDeployStatusResponse>"
        );
        let r = read_check_deploy_status(&xml::parse(doc.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            r.failure_messages(),
            [
                "profiles/A.profile: p1",
                "profiles/B.profile: p2",
                "UNKNOWN_EXCEPTION: boom"
            ]
        );
    }

    #[test]
    fn real_list_metadata_responses_parse() {
        let listed =
            read_list_metadata(&fixture("list-metadata-customobject-response.xml")).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].full_name, "ContractContactRole");
        assert_eq!(listed[0].file_name, "objects/ContractContactRole.object");
        assert!(
            read_list_metadata(&fixture("list-metadata-empty-response.xml"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn real_faults_parse_by_local_code() {
        for (file, code) in [
            ("fault-insufficient-access.xml", "INSUFFICIENT_ACCESS"),
            ("fault-invalid-session.xml", "INVALID_SESSION_ID"),
            ("fault-invalid-login-partner.xml", "INVALID_LOGIN"),
            (
                "fault-invalid-type-for-operation.xml",
                "INVALID_TYPE_FOR_OPERATION",
            ),
        ] {
            let path = format!(
                "{}/tests/fixtures/salesforce/metadata-api/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let root = xml::parse(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(soap::fault(&root).unwrap().code, code, "{file}");
        }
    }

    #[test]
    fn read_metadata_reads_profiles_and_skips_unknown_names() {
        let doc = format!(
            "<readMetadataResponse xmlns=\"{METADATA_NS}\" xmlns:xsi=\"{XSI_NS}\"><result>\
             <records xsi:type=\"Profile\"><fullName>Custom%3A Sales</fullName>\
             <loginIpRanges><endAddress>10.0.0.3</endAddress><startAddress>10.0.0.0</startAddress></loginIpRanges>\
             </records><records xsi:type=\"Profile\"/><records xsi:type=\"Profile\"><fullName>Admin</fullName></records>\
             </result></readMetadataResponse>"
        );
        let records = read_read_metadata(&xml::parse(doc.as_bytes()).unwrap()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].full_name, "Custom%3A Sales");
        assert_eq!(records[0].ranges.len(), 1);
        assert!(records[1].ranges.is_empty());
    }

    #[test]
    fn security_settings_and_eca_policies_read_their_fields() {
        let doc = format!(
            "<readMetadataResponse xmlns=\"{METADATA_NS}\" xmlns:xsi=\"{XSI_NS}\"><result>\
             <records xsi:type=\"SecuritySettings\"><fullName>Security</fullName>\
             <sessionSettings><enforceIpRangesEveryRequest>true</enforceIpRangesEveryRequest>\
             </sessionSettings></records></result></readMetadataResponse>"
        );
        let settings = read_security_settings(&xml::parse(doc.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            settings,
            Some(SessionSettingsRecord {
                enforce_ip_ranges_every_request: true
            })
        );
        let doc = format!(
            "<readMetadataResponse xmlns=\"{METADATA_NS}\" xmlns:xsi=\"{XSI_NS}\"><result>\
             <records xsi:type=\"ExtlClntAppOauthConfigurablePolicies\"><fullName>IPGuard_oauthPlcy</fullName>\
             <externalClientApplication>IPGuard</externalClientApplication>\
             <ipRelaxationPolicyType>Bypass</ipRelaxationPolicyType></records></result></readMetadataResponse>"
        );
        let policies = read_eca_oauth_policies(&xml::parse(doc.as_bytes()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            policies.ip_relaxation_policy_type.as_deref(),
            Some("Bypass")
        );
        assert_eq!(policies.external_client_application, "IPGuard");
        let unknown = format!(
            "<readMetadataResponse xmlns=\"{METADATA_NS}\" xmlns:xsi=\"{XSI_NS}\"><result>\
             <records xsi:type=\"ExtlClntAppOauthConfigurablePolicies\"/></result></readMetadataResponse>"
        );
        assert_eq!(
            read_eca_oauth_policies(&xml::parse(unknown.as_bytes()).unwrap()).unwrap(),
            None
        );
        // a record of another type is an error, not a silent "not set"
        assert!(read_security_settings(&xml::parse(doc.as_bytes()).unwrap()).is_err());
    }

    #[test]
    fn deploy_body_omits_test_level_and_keeps_wsdl_order() {
        let body = deploy_body(b"zip", true);
        assert!(!body.contains("testLevel"));
        let order = [
            "allowMissingFiles",
            "autoUpdatePackage",
            "checkOnly",
            "ignoreWarnings",
            "performRetrieve",
            "purgeOnDelete",
            "rollbackOnError",
            "singlePackage",
        ];
        let positions: Vec<_> = order
            .iter()
            .map(|e| body.find(&format!("<{e}>")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        assert!(body.contains("<checkOnly>true</checkOnly>"));
        assert!(body.contains("<ZipFile>emlw</ZipFile>"));
    }
}
