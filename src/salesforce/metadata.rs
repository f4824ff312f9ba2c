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

/// `deploy` with DeployOptions in WSDL order. `testLevel` is deliberately omitted: production
/// orgs refuse `NoTestRun`, and a package without Apex runs no tests by default (SPEC §5.4).
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
    expect(body, "readMetadataResponse")?;
    let result = body
        .child(METADATA_NS, "result")
        .ok_or_else(|| unexpected("readMetadataResponse without result"))?;
    let mut records = Vec::new();
    for record in result.children_named(METADATA_NS, "records") {
        if record.is_nil() {
            continue;
        }
        if let Some(kind) = record.attribute(Some(XSI_NS), "type") {
            let local = kind.rsplit(':').next().unwrap_or(kind);
            if local != "Profile" {
                return Err(unexpected(format!(
                    "record of type {kind}, expected Profile"
                )));
            }
        }
        let Some(full_name) = record.child_text(METADATA_NS, "fullName") else {
            continue;
        };
        let ranges = profile::login_ip_ranges(record)
            .map_err(|e| unexpected(format!("profile {full_name}: {e}")))?
            .unwrap_or_default();
        records.push(ProfileRecord {
            full_name: full_name.to_owned(),
            ranges,
        });
    }
    Ok(records)
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
