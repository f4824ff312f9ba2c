//! What a Metadata API deploy does to the simulated org: read the zip (package.xml plus
//! `profiles/<fullName>.profile` files and the side doors' files), then — when the deploy
//! finishes — validate every member against the org and, if nothing failed (or
//! `rollbackOnError` is false), apply them all:
//! - a Profile: REPLACE the profile's login IP ranges with the list its file carries (a file
//!   without `loginIpRanges` leaves the profile's list alone);
//! - `Settings` member `Security` (`settings/Security.settings`): PARTIAL — only the
//!   `sessionSettings` fields the file names change (see `side_doors.rs`);
//! - `ExtlClntAppOauthConfigurablePolicies` and `ConnectedApp`: REPLACE the whole record.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use super::DeployOutcome;
use super::side_doors;
use ipguard_wire::profile::{self, ProfileParseError};
use ipguard_wire::ranges::{LoginIpRange, RangeError};
use ipguard_wire::side_doors as wire;
use ipguard_wire::xml::{self, METADATA_NS};

/// Salesforce's documented limits: 10,000 files, ~600 MB unzipped (the sim is stricter).
const MAX_FILES: usize = 10_000;
const MAX_UNZIPPED_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeployOptions {
    pub check_only: bool,
    pub ignore_warnings: bool,
    pub rollback_on_error: bool,
    pub single_package: bool,
    pub test_level: Option<String>,
}

/// One `DeployMessage` (a componentSuccess or componentFailure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub changed: bool,
    pub component_type: String,
    pub created: bool,
    pub deleted: bool,
    pub file_name: String,
    pub full_name: String,
    pub problem: Option<String>,
    pub success: bool,
}

impl Message {
    fn failure(component_type: &str, file_name: &str, full_name: &str, problem: String) -> Self {
        Self {
            changed: false,
            component_type: component_type.to_owned(),
            created: false,
            deleted: false,
            file_name: file_name.to_owned(),
            full_name: full_name.to_owned(),
            problem: Some(problem),
            success: false,
        }
    }

    fn success(component_type: &str, file_name: &str, full_name: &str, changed: bool) -> Self {
        Self {
            changed,
            component_type: component_type.to_owned(),
            created: false,
            deleted: false,
            file_name: file_name.to_owned(),
            full_name: full_name.to_owned(),
            problem: None,
            success: true,
        }
    }
}

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

/// What a successful deploy changes in the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A profile's whole list of login IP ranges.
    Ranges(String, Vec<LoginIpRange>),
    /// These session settings (the others keep their values).
    SessionSettings(Vec<(String, String)>),
    /// An External Client App (developer name) gets exactly these OAuth policies.
    EcaPolicies(String, Vec<(String, String)>),
    /// A connected app becomes exactly this record.
    ConnectedApp(String, Vec<(String, String)>),
}

/// The org as a deploy is validated against.
pub(crate) trait Org {
    /// A profile's ranges; `None` when the org has no such profile.
    fn profile_ranges(&self, full_name: &str) -> Option<Vec<LoginIpRange>>;
    /// A session setting's current text.
    fn session_setting(&self, name: &str) -> Option<String>;
    /// An External Client App's OAuth policies; `None` when the org has no such app.
    fn eca_policies(&self, app: &str) -> Option<Vec<(String, String)>>;
    /// A connected app's record, flattened; `None` when the org has no such app.
    fn connected_app(&self, name: &str) -> Option<Vec<(String, String)>>;
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
fn is_safe_path(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && name
            .trim_end_matches('/')
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".")
}

fn read_profile(bytes: &[u8]) -> Content {
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
fn range_problem(error: &RangeError) -> String {
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
fn thousands(n: u128) -> String {
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

/// How a finished deploy came out, and what it changes.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    /// `Succeeded`, `SucceededPartial` or `Failed`.
    pub status: &'static str,
    pub failures: Vec<Message>,
    pub successes: Vec<Message>,
    pub components_total: usize,
    pub components_deployed: usize,
    pub component_errors: usize,
    /// What the deploy changes (empty for checkOnly and failed deploys).
    pub apply: Vec<Change>,
}

impl Evaluation {
    fn failed(failures: Vec<Message>, total: usize, component_errors: usize) -> Self {
        Self {
            status: "Failed",
            failures,
            successes: Vec::new(),
            components_total: total,
            components_deployed: 0,
            component_errors,
            apply: Vec::new(),
        }
    }
}

/// Validates a package against the org as it is now.
pub(crate) fn evaluate(
    package: &Package,
    options: &DeployOptions,
    org: &dyn Org,
    forced: &DeployOutcome,
) -> Evaluation {
    let total = package.members.len();
    if !package.problems.is_empty() {
        // Package-level failures are not component errors (numberComponentErrors stays 0,
        // as in Salesforce's "No package.xml found" response).
        return Evaluation::failed(package.problems.clone(), total, 0);
    }
    if let DeployOutcome::Fail(problems) = forced {
        let failures: Vec<Message> = problems
            .iter()
            .enumerate()
            .map(|(i, problem)| match package.members.get(i % total.max(1)) {
                Some(m) => Message::failure(
                    &m.component_type,
                    &m.file_name,
                    &m.full_name,
                    problem.clone(),
                ),
                None => Message::failure("", &package.package_file, "package.xml", problem.clone()),
            })
            .collect();
        let errors = failures.len();
        return Evaluation::failed(failures, total, errors);
    }

    let mut failures = Vec::new();
    let mut successes = Vec::new();
    let mut apply = Vec::new();
    for member in &package.members {
        let fail = |problem: String| {
            Message::failure(
                &member.component_type,
                &member.file_name,
                &member.full_name,
                problem,
            )
        };
        match &member.content {
            Content::Missing => failures.push(Message::failure(
                &member.component_type,
                &package.package_file,
                &member.full_name,
                format!(
                    "An object '{}' of type {} was named in package.xml, but was not found in zipped directory",
                    member.full_name, member.component_type
                ),
            )),
            Content::Unsupported => failures.push(fail(
                "Not available for deploy for this organization".to_owned(),
            )),
            Content::Invalid(problem) => failures.push(fail(problem.clone())),
            Content::SessionSettings(fields) => {
                let changed = fields
                    .iter()
                    .any(|(name, value)| org.session_setting(name).as_ref() != Some(value));
                successes.push(Message::success(
                    "Settings",
                    &member.file_name,
                    &member.full_name,
                    changed,
                ));
                apply.push(Change::SessionSettings(fields.clone()));
            }
            Content::EcaPolicies(fields) => {
                let app = fields
                    .iter()
                    .find(|(f, _)| f == "externalClientApplication")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                match org.eca_policies(&app) {
                    None => failures.push(fail(format!(
                        "In field: externalClientApplication - no ExternalClientApplication named {app} found"
                    ))),
                    Some(_) if member.full_name != wire::eca_policies_name(&app) => {
                        failures.push(fail(format!(
                            "In field: fullName - no ExtlClntAppOauthConfigurablePolicies named {} found",
                            member.full_name
                        )));
                    }
                    Some(existing) => {
                        successes.push(Message::success(
                            &member.component_type,
                            &member.file_name,
                            &member.full_name,
                            !side_doors::same_fields(&existing, fields),
                        ));
                        apply.push(Change::EcaPolicies(app, fields.clone()));
                    }
                }
            }
            Content::ConnectedApp(fields) => match org.connected_app(&member.full_name) {
                None => failures.push(fail(format!(
                    "In field: fullName - no ConnectedApp named {} found (connected app creation \
                     is restricted as of Spring '26; the simulated org creates none)",
                    member.full_name
                ))),
                Some(existing) => {
                    successes.push(Message::success(
                        &member.component_type,
                        &member.file_name,
                        &member.full_name,
                        existing != *fields,
                    ));
                    apply.push(Change::ConnectedApp(
                        member.full_name.clone(),
                        fields.clone(),
                    ));
                }
            },
            Content::Ranges(ranges) => {
                let Some(existing) = org.profile_ranges(&member.full_name) else {
                    failures.push(fail(format!(
                        "In field: fullName - no Profile named {} found",
                        member.full_name
                    )));
                    continue;
                };
                let Some(ranges) = ranges else {
                    successes.push(Message::success(
                        "Profile",
                        &member.file_name,
                        &member.full_name,
                        false,
                    ));
                    continue;
                };
                // Ranges already on the profile are kept as they are (legacy sizes too); new
                // ones must pass every rule Salesforce applies today.
                let problems: Vec<String> = ranges
                    .iter()
                    .filter(|r| !existing.iter().any(|e| e.key() == r.key()))
                    .filter_map(|r| {
                        LoginIpRange::new(r.start(), r.end(), r.description().map(str::to_owned))
                            .err()
                    })
                    .map(|e| range_problem(&e))
                    .collect();
                if problems.is_empty() {
                    successes.push(Message::success(
                        "Profile",
                        &member.file_name,
                        &member.full_name,
                        !same_list(&existing, ranges),
                    ));
                    apply.push(Change::Ranges(member.full_name.clone(), ranges.clone()));
                } else {
                    failures.extend(problems.into_iter().map(fail));
                }
            }
        }
    }
    let component_errors = failures.len();
    if !failures.is_empty() && (options.rollback_on_error || successes.is_empty()) {
        return Evaluation::failed(failures, total, component_errors);
    }
    let deployed = successes.len();
    successes.push(Message::success(
        "",
        &package.package_file,
        "package.xml",
        true,
    ));
    if options.check_only {
        apply.clear();
    }
    Evaluation {
        status: if failures.is_empty() {
            "Succeeded"
        } else {
            "SucceededPartial"
        },
        failures,
        successes,
        components_total: total,
        components_deployed: deployed,
        component_errors,
        apply,
    }
}

/// Same ranges with the same descriptions, in any order.
fn same_list(a: &[LoginIpRange], b: &[LoginIpRange]) -> bool {
    let key = |r: &LoginIpRange| (r.key(), r.description().map(str::to_owned));
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            zip.start_file(*name, SimpleFileOptions::default()).unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn package_xml(members: &[&str]) -> String {
        let members: String = members
            .iter()
            .map(|m| format!("<members>{m}</members>"))
            .collect();
        format!(
            "<Package xmlns=\"{METADATA_NS}\"><types>{members}<name>Profile</name></types><version>66.0</version></Package>"
        )
    }

    fn options() -> DeployOptions {
        DeployOptions {
            check_only: false,
            ignore_warnings: false,
            rollback_on_error: true,
            single_package: true,
            test_level: None,
        }
    }

    fn range(start: &str, end: &str) -> LoginIpRange {
        LoginIpRange::parse_existing(start, end, None).unwrap()
    }

    /// An org of profiles only.
    struct Profiles(Vec<(&'static str, Vec<LoginIpRange>)>);

    impl Org for Profiles {
        fn profile_ranges(&self, full_name: &str) -> Option<Vec<LoginIpRange>> {
            self.0
                .iter()
                .find(|(n, _)| *n == full_name)
                .map(|(_, r)| r.clone())
        }
        fn session_setting(&self, _: &str) -> Option<String> {
            None
        }
        fn eca_policies(&self, _: &str) -> Option<Vec<(String, String)>> {
            None
        }
        fn connected_app(&self, _: &str) -> Option<Vec<(String, String)>> {
            None
        }
    }

    #[test]
    fn size_limit_problem_names_the_range_and_the_limit() {
        let error = LoginIpRange::new(
            "10.0.0.0".parse().unwrap(),
            "11.255.255.255".parse().unwrap(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            range_problem(&error),
            "Invalid IP address range 10.0.0.0 - 11.255.255.255: a login IP range can contain at most 16,777,216 addresses"
        );
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn unsafe_paths_fail_the_deploy() {
        for bad in ["../evil", "profiles/../../x", "/abs", "a\\b", "./x"] {
            let package = read_package(&zip_of(&[("package.xml", &package_xml(&[])), (bad, "x")]));
            assert_eq!(package.problems.len(), 1, "{bad}");
            let problem = package.problems[0].problem.as_deref().unwrap();
            assert!(problem.starts_with("Invalid file path"), "{problem}");
        }
    }

    #[test]
    fn not_a_zip_and_missing_package_xml_are_failures() {
        let package = read_package(b"not a zip");
        assert!(
            package.problems[0]
                .problem
                .as_deref()
                .unwrap()
                .starts_with("Unable to read the zip file")
        );
        let package = read_package(&zip_of(&[("profiles/Admin.profile", "<x/>")]));
        assert_eq!(
            package.problems[0].problem.as_deref(),
            Some("No package.xml found")
        );
        let evaluation = evaluate(
            &package,
            &options(),
            &Profiles(Vec::new()),
            &DeployOutcome::Succeed,
        );
        assert_eq!(evaluation.status, "Failed");
        assert_eq!(evaluation.component_errors, 0);
    }

    #[test]
    fn partial_deploy_applies_what_succeeded_without_rollback() {
        let profile = format!(
            "<Profile xmlns=\"{METADATA_NS}\"><loginIpRanges><endAddress>10.0.0.1</endAddress><startAddress>10.0.0.1</startAddress></loginIpRanges></Profile>"
        );
        let package = read_package(&zip_of(&[
            ("package.xml", &package_xml(&["Admin", "Ghost"])),
            ("profiles/Admin.profile", &profile),
            ("profiles/Ghost.profile", &profile),
        ]));
        let current = &Profiles(vec![("Admin", vec![range("10.0.0.9", "10.0.0.9")])]);
        let with_rollback = evaluate(&package, &options(), current, &DeployOutcome::Succeed);
        assert_eq!(with_rollback.status, "Failed");
        assert!(with_rollback.apply.is_empty());
        let without = DeployOptions {
            rollback_on_error: false,
            ..options()
        };
        let partial = evaluate(&package, &without, current, &DeployOutcome::Succeed);
        assert_eq!(partial.status, "SucceededPartial");
        assert_eq!(partial.apply.len(), 1);
        assert!(matches!(&partial.apply[0], Change::Ranges(name, _) if name == "Admin"));
        assert_eq!(
            partial.failures[0].problem.as_deref(),
            Some("In field: fullName - no Profile named Ghost found")
        );
    }

    #[test]
    fn wildcard_and_nested_package_are_understood() {
        let profile = format!("<Profile xmlns=\"{METADATA_NS}\"/>");
        let package = read_package(&zip_of(&[
            ("src/package.xml", &package_xml(&["*"])),
            ("src/profiles/Custom%3A Sales.profile", &profile),
        ]));
        assert!(package.problems.is_empty());
        assert_eq!(package.profile_members(), ["Custom%3A Sales"]);
        assert_eq!(
            package.members[0].file_name,
            "src/profiles/Custom%3A Sales.profile"
        );
    }

    fn profile_content(body: &str) -> Content {
        read_profile(format!("<Profile xmlns=\"{METADATA_NS}\">{body}</Profile>").as_bytes())
    }

    fn problem(content: Content) -> String {
        match content {
            Content::Invalid(problem) => problem,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    const RANGE: &str = "<loginIpRanges><endAddress>10.0.0.9</endAddress>\
                         <startAddress>10.0.0.1</startAddress></loginIpRanges>";

    #[test]
    fn profile_elements_must_follow_the_xsd_sequence() {
        // In order: accepted.
        assert!(matches!(
            profile_content(&format!(
                "<custom>true</custom>{RANGE}<userLicense>Salesforce</userLicense>"
            )),
            Content::Ranges(Some(_))
        ));
        // custom belongs before loginIpRanges.
        assert_eq!(
            problem(profile_content(&format!("{RANGE}<custom>true</custom>"))),
            "Error parsing file: Element custom invalid at this location in type Profile"
        );
        // A block of loginIpRanges split by another element (help article 000383335's case).
        assert_eq!(
            problem(profile_content(&format!(
                "{RANGE}<objectPermissions/>{RANGE}"
            ))),
            "Error parsing file: Element loginIpRanges is duplicated at this location in type Profile"
        );
        // startAddress before endAddress inside a range.
        assert_eq!(
            problem(profile_content(
                "<loginIpRanges><startAddress>10.0.0.1</startAddress>\
                 <endAddress>10.0.0.9</endAddress></loginIpRanges>"
            )),
            "Error parsing file: Element endAddress invalid at this location in type ProfileLoginIpRange"
        );
        // An element the type does not have.
        assert_eq!(
            problem(profile_content("<loginIpRange/>")),
            "Error parsing file: Element loginIpRange invalid at this location in type Profile"
        );
    }
}
