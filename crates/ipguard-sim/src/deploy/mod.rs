//! What a Metadata API deploy does to the simulated org: read the zip (package.xml plus
//! `profiles/<fullName>.profile` files and the side doors' files), then — when the deploy
//! finishes — validate every member against the org and, if nothing failed (or
//! `rollbackOnError` is false), apply them all:
//! - a Profile: REPLACE the profile's login IP ranges with the list its file carries (a file
//!   without `loginIpRanges` leaves the profile's list alone);
//! - `Settings` member `Security` (`settings/Security.settings`): PARTIAL — only the
//!   `sessionSettings` fields the file names change (see `side_doors/`);
//! - `ExtlClntAppOauthConfigurablePolicies` and `ConnectedApp`: REPLACE the whole record.
//!
//! Two steps, one file each: `package` reads the zip when the deploy call arrives (whatever is
//! wrong becomes a failure reported later, as Salesforce does); this module judges what was
//! read against the org when the deploy finishes and says what to apply.

use super::DeployOutcome;
use super::side_doors;
use ipguard_wire::ranges::LoginIpRange;
use ipguard_wire::side_doors as wire;
use package::range_problem;

mod package;

pub(crate) use package::{Content, Package, read_package, schema_order};

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
mod tests;
