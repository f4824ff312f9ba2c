//! Reading a deploy zip as the deploy call arrives: package.xml, the members it lists and
//! each member's file, checked against its XSD sequence. Never fails: every problem becomes a
//! failure of the deploy, reported by checkDeployStatus as Salesforce does.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use super::Message;
use crate::side_doors;
use ipguard_wire::profile::{self, ProfileParseError};
use ipguard_wire::ranges::{LoginIpRange, RangeError};
use ipguard_wire::side_doors as wire;
use ipguard_wire::xml::{self, METADATA_NS};

/// Salesforce's documented limits: 10,000 files, ~600 MB unzipped (the sim is stricter).
const MAX_FILES: usize = 10_000;
const MAX_UNZIPPED_BYTES: u64 = 64 * 1024 * 1024;

/// A member of package.xml and what its file held.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub component_type: String,
    pub full_name: String,
    pub file_name: String,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// Named in package.xml, no file in the zip.
    Missing,
    /// A metadata type the simulated org does not deploy.
    Unsupported,
    /// The file could not be read as a profile: the problem text.
    Invalid(String),
    /// The profile file's `loginIpRanges` (`None`: the list is absent).
    Ranges(Option<Vec<LoginIpRange>>),
    /// `Security.settings`: the `sessionSettings` fields it names, in file order.
    SessionSettings(Vec<(String, String)>),
    /// An `.ecaOauthPlcy` file: every field (`fullName` left out), in file order.
    EcaPolicies(Vec<(String, String)>),
    /// A `.connectedApp` file, flattened (`oauthPolicy/ipRelaxation`), in file order.
    ConnectedApp(Vec<(String, String)>),
}

/// A deploy zip as read when the deploy call arrived.
#[derive(Debug, Clone, Default)]
pub(crate) struct Package {
    /// Every entry name in the zip, verbatim.
    pub files: Vec<String>,
    /// Package-level failures (unreadable zip, unsafe path, no or bad package.xml).
    pub problems: Vec<Message>,
    pub members: Vec<Member>,
    /// Path of package.xml inside the zip (`package.xml`, or `dir/package.xml`).
    pub package_file: String,
}

impl Package {
    pub fn profile_members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.component_type == "Profile")
            .map(|m| m.full_name.clone())
            .collect()
    }

    fn failed(files: Vec<String>, problem: Message) -> Self {
        Self {
            files,
            problems: vec![problem],
            members: Vec::new(),
            package_file: "package.xml".to_owned(),
        }
    }
}

/// Reads a deploy zip. Never fails: whatever is wrong becomes a failure of the deploy, as
/// Salesforce reports it from checkDeployStatus rather than from the deploy call.
pub(crate) fn read_package(zip_bytes: &[u8]) -> Package {
    let zip_problem = |files: Vec<String>, problem: String| {
        Package::failed(files, Message::failure("", "", "", problem))
    };
    let mut archive = match zip::ZipArchive::new(Cursor::new(zip_bytes)) {
        Ok(archive) => archive,
        Err(e) => return zip_problem(Vec::new(), format!("Unable to read the zip file: {e}")),
    };
    if archive.len() > MAX_FILES {
        return zip_problem(
            Vec::new(),
            format!("The zip file contains more than {MAX_FILES} files"),
        );
    }
    let mut files = Vec::new();
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut budget = MAX_UNZIPPED_BYTES;
    for index in 0..archive.len() {
        let mut file = match archive.by_index(index) {
            Ok(file) => file,
            Err(e) => return zip_problem(files, format!("Unable to read the zip file: {e}")),
        };
        let name = match file.name() {
            Ok(name) => name.into_owned(),
            Err(e) => return zip_problem(files, format!("Unable to read the zip file: {e}")),
        };
        files.push(name.clone());
        if !is_safe_path(&name) {
            return Package::failed(
                files,
                Message::failure("", &name, &name, format!("Invalid file path: {name}")),
            );
        }
        if file.is_dir() {
            continue;
        }
        let mut content = Vec::new();
        if let Err(e) = (&mut file).take(budget + 1).read_to_end(&mut content) {
            return zip_problem(
                files,
                format!("Unable to read {name} from the zip file: {e}"),
            );
        }
        let size = content.len() as u64;
        if size > budget {
            return zip_problem(
                files,
                "The zip file exceeds the maximum uncompressed size".to_owned(),
            );
        }
        budget -= size;
        entries.insert(name, content);
    }

    // singlePackage: package.xml at the root; otherwise also one folder down.
    let package_file = if entries.contains_key("package.xml") {
        Some("package.xml".to_owned())
    } else {
        let nested: Vec<&String> = entries
            .keys()
            .filter(|k| k.matches('/').count() == 1 && k.ends_with("/package.xml"))
            .collect();
        (nested.len() == 1).then(|| nested[0].clone())
    };
    let Some(package_file) = package_file else {
        return Package::failed(
            files,
            Message::failure(
                "",
                "package.xml",
                "package.xml",
                "No package.xml found".to_owned(),
            ),
        );
    };
    let prefix = package_file
        .strip_suffix("package.xml")
        .unwrap_or_default()
        .to_owned();
    let package_problem = |files: Vec<String>, problem: String| Package {
        package_file: package_file.clone(),
        ..Package::failed(
            files,
            Message::failure("", &package_file, "package.xml", problem),
        )
    };
    let package_bytes = entries.get(&package_file).map(Vec::as_slice);
    let root = match xml::parse(package_bytes.unwrap_or_default()) {
        Ok(root) => root,
        Err(e) => return package_problem(files, format!("Error parsing file: {e}")),
    };
    if !root.is(METADATA_NS, "Package") {
        return package_problem(
            files,
            format!(
                "Error parsing file: the root element must be Package in namespace {METADATA_NS}"
            ),
        );
    }

    let mut members = Vec::new();
    for types in root.children_named(METADATA_NS, "types") {
        let type_name = types.child_text(METADATA_NS, "name").unwrap_or_default();
        let mut names: Vec<String> = Vec::new();
        for member in types.children_named(METADATA_NS, "members") {
            let member = member.text.trim();
            if member == "*" && type_name == "Profile" {
                // A wildcard deploys every profile file in the zip.
                let folder = format!("{prefix}profiles/");
                names.extend(entries.keys().filter_map(|k| {
                    k.strip_prefix(&folder)?
                        .strip_suffix(".profile")
                        .filter(|n| !n.contains('/'))
                        .map(str::to_owned)
                }));
            } else {
                names.push(member.to_owned());
            }
        }
        for full_name in names {
            let file = match type_name {
                "Profile" => Some((
                    format!("profiles/{full_name}.profile"),
                    read_profile as Reader,
                )),
                "Settings" if full_name == wire::SECURITY_SETTINGS_NAME => Some((
                    format!("settings/{full_name}.settings"),
                    side_doors::read_security_settings as Reader,
                )),
                "ExtlClntAppOauthConfigurablePolicies" => Some((
                    format!("extlClntAppOauthPolicies/{full_name}.ecaOauthPlcy"),
                    side_doors::read_eca_policies as Reader,
                )),
                "ConnectedApp" => Some((
                    format!("connectedApps/{full_name}.connectedApp"),
                    side_doors::read_connected_app as Reader,
                )),
                _ => None,
            };
            let member = if let Some((path, read)) = file {
                let file_name = format!("{prefix}{path}");
                let content = match entries.get(&file_name) {
                    None => Content::Missing,
                    Some(bytes) => read(bytes),
                };
                Member {
                    component_type: type_name.to_owned(),
                    full_name,
                    file_name,
                    content,
                }
            } else {
                Member {
                    component_type: type_name.to_owned(),
                    file_name: package_file.clone(),
                    full_name,
                    content: Content::Unsupported,
                }
            };
            members.push(member);
        }
    }
    Package {
        files,
        problems: Vec::new(),
        members,
        package_file,
    }
}

/// Reads one component file into what the deploy would do with it.
type Reader = fn(&[u8]) -> Content;

/// No absolute paths, backslashes or `..`/`.` components: the zip must stay inside itself.
pub(super) fn is_safe_path(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && name
            .trim_end_matches('/')
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".")
}

pub(super) fn read_profile(bytes: &[u8]) -> Content {
    let root = match xml::parse(bytes) {
        Ok(root) => root,
        Err(e) => return Content::Invalid(format!("Error parsing file: {e}")),
    };
    if !root.is(METADATA_NS, "Profile") {
        return Content::Invalid(format!(
            "Error parsing file: the root element must be Profile in namespace {METADATA_NS}"
        ));
    }
    if let Err(problem) = schema_order(&root, "Profile", PROFILE_SEQUENCE).and_then(|()| {
        root.children_named(METADATA_NS, "loginIpRanges")
            .try_for_each(|r| schema_order(r, "ProfileLoginIpRange", LOGIN_IP_RANGE_SEQUENCE))
    }) {
        return Content::Invalid(problem);
    }
    match profile::login_ip_ranges(&root) {
        Ok(ranges) => Content::Ranges(ranges),
        Err(ProfileParseError::MissingAddress(field)) => {
            Content::Invalid(format!("Required field is missing: loginIpRanges.{field}"))
        }
        Err(ProfileParseError::Range(e)) => Content::Invalid(range_problem(&e)),
    }
}

/// The children of `Profile` in the order of its XSD sequence (`Metadata`'s `fullName` and
/// `module` first, then Profile's own), from `metadata.wsdl` (API 66.0).
const PROFILE_SEQUENCE: &[&str] = &[
    "fullName",
    "module",
    "agentAccesses",
    "applicationVisibilities",
    "categoryGroupVisibilities",
    "classAccesses",
    "custom",
    "customMetadataTypeAccesses",
    "customPermissions",
    "customSettingAccesses",
    "description",
    "externalDataSourceAccesses",
    "fieldPermissions",
    "flowAccesses",
    "genComputingSummaryDefAccesses",
    "layoutAssignments",
    "loginFlows",
    "loginHours",
    "loginIpRanges",
    "objectPermissions",
    "pageAccesses",
    "profileActionOverrides",
    "recordTypeVisibilities",
    "servicePresenceStatusAccesses",
    "tabVisibilities",
    "userLicense",
    "userPermissions",
];

/// `ProfileLoginIpRange`'s XSD sequence.
const LOGIN_IP_RANGE_SEQUENCE: &[&str] = &["description", "endAddress", "startAddress"];

/// Salesforce parses a metadata file against its XSD sequence: every child must be a known
/// element of the Metadata namespace, in sequence order, and the occurrences of a repeated
/// element must be consecutive. Documented text (help article 000383335): `Error parsing
/// file: Element tabVisibilities is duplicated at this location in type Profile`. The text for
/// an unknown or out-of-order element (`… invalid at this location in type …`) is a GUESS in
/// the same style.
pub(crate) fn schema_order(
    element: &xml::Element,
    type_name: &str,
    sequence: &[&str],
) -> Result<(), String> {
    let mut last: Option<usize> = None;
    for child in &element.children {
        let position = (child.ns.as_deref() == Some(METADATA_NS))
            .then(|| sequence.iter().position(|name| *name == child.name))
            .flatten();
        let Some(position) = position else {
            return Err(format!(
                "Error parsing file: Element {} invalid at this location in type {type_name}",
                child.name
            ));
        };
        if last.is_some_and(|previous| position < previous) {
            // Seen before and interrupted by a later element: a split block.
            let seen = element
                .children
                .iter()
                .take_while(|c| !std::ptr::eq(*c, child))
                .any(|c| c.name == child.name && c.ns == child.ns);
            let what = if seen { "is duplicated" } else { "invalid" };
            return Err(format!(
                "Error parsing file: Element {} {what} at this location in type {type_name}",
                child.name
            ));
        }
        last = Some(position);
    }
    Ok(())
}

/// Salesforce-style text for a range Salesforce would refuse.
pub(super) fn range_problem(error: &RangeError) -> String {
    match error {
        RangeError::BadAddress(text) | RangeError::BadSource(text) => {
            format!("Invalid IP address: {text}")
        }
        RangeError::MixedFamilies { start, end } => format!(
            "Invalid IP address range {start} - {end}: both IP addresses in a range must be either IPv4 or IPv6"
        ),
        RangeError::Reversed { start, end } => format!(
            "Invalid IP address range {start} - {end}: the IP start address must be lower than the IP end address"
        ),
        RangeError::CrossesMappedBlock { start, end } => format!(
            "Invalid IP address range {start} - {end}: a range can't include IP addresses inside of the IPv4-mapped IPv6 address space if it also includes IP addresses outside of it"
        ),
        RangeError::TooLarge {
            start, end, max, ..
        } => format!(
            "Invalid IP address range {start} - {end}: a login IP range can contain at most {} addresses",
            thousands(*max)
        ),
    }
}

/// `16777216` → `16,777,216`.
pub(super) fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
