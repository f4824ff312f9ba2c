//! Who changed a drifted profile's Login IP Ranges, when and what — from `SetupAuditTrail`
//! (docs/contract.md §5 rule 9).
//!
//! One REST query reads the audit trail of a look-back window; a pure core keeps the entries
//! that are login-IP-range changes of a drifted profile and were made by someone other than
//! the integration user. ipguard's own deploys run as the integration user, so they are
//! dropped and never blamed on anyone. Attribution is best effort: a failure (no permission,
//! API error) yields a note and never fails the run.
//!
//! Salesforce does not document the `Action` value of a profile login-IP-range edit, so
//! entries are matched on `Section`/`Display` text (configurable in [`Matchers`]).
//! A run calls [`attribute`] once it has found drift (see `reconcile::run`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::doors::Door;
use crate::salesforce::client::{MetadataClient, SalesforceError};
use crate::salesforce::profile::{self, ProfileName};
use crate::salesforce::soql;

/// How far back the audit trail is read by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Most audit entries one attribution reads (newest first).
pub const QUERY_LIMIT: usize = 200;

/// Which audit entries are login-IP-range changes. An entry matches when its `Section` is one
/// of `sections` (any section when empty) and its `Display` contains one of
/// `display_contains` or its `Action` is one of `actions`; all comparisons ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Matchers {
    pub sections: Vec<String>,
    pub display_contains: Vec<String>,
    pub actions: Vec<String>,
    /// Profile full name → the label Setup shows, for labels that differ from the decoded
    /// name (added to the built-in standard-profile labels).
    pub labels: BTreeMap<String, String>,
}

impl Default for Matchers {
    /// `Display` containing "login ip" ("Login IP Ranges", "login IP range"), any section.
    /// No `Action` default: the value is undocumented (add it here once seen in an org).
    fn default() -> Self {
        Self {
            sections: Vec::new(),
            display_contains: vec!["login ip".to_owned()],
            actions: Vec::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl Matchers {
    fn matches(&self, entry: &Entry) -> bool {
        let section_ok = self.sections.is_empty()
            || self
                .sections
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&entry.section));
        let display = entry.display.to_lowercase();
        let text_ok = self
            .display_contains
            .iter()
            .any(|needle| !needle.is_empty() && display.contains(&needle.to_lowercase()))
            || self
                .actions
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&entry.action));
        section_ok && text_ok
    }

    /// The texts `Display` may name the profile by. Salesforce's audit trail shows the profile
    /// LABEL ("Custom: Support", "System Administrator") while ipguard holds the API full name
    /// (`Custom%3A Support`, `Admin`); labels can differ from names (a renamed label, a
    /// standard profile), so the decoded name, the known standard label and any configured
    /// label are all tried.
    fn labels_for(&self, name: &ProfileName) -> Vec<String> {
        let mut labels = vec![name.decoded()];
        labels.extend(profile::standard_label(name.as_str()).map(str::to_owned));
        labels.extend(self.labels.get(name.as_str()).cloned());
        labels.retain(|l| !l.trim().is_empty());
        labels
    }
}

/// One change to a drifted profile, made by someone other than ipguard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub profile: ProfileName,
    /// `CreatedBy.Username` of the audit entry.
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub action: String,
    pub display: String,
    /// The admin who was logged in as `changed_by` (`DelegateUser`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_user: Option<String>,
}

/// One change to a drifted side door, made by someone other than ipguard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorAttribution {
    pub door: Door,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub action: String,
    pub display: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate_user: Option<String>,
}

/// A drifted side door to attribute: which door, and the app `app-relaxation` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorSubject<'a> {
    pub door: Door,
    pub app: &'a str,
}

impl DoorSubject<'_> {
    /// Whether an audit entry's `Display` is a change of this door. Salesforce documents
    /// neither text, so these are GUESSES (docs/salesforce.md § Side doors): the setting's
    /// label for `every-request`; "IP relaxation" naming the app for `app-relaxation`.
    fn named_by(&self, display: &str) -> bool {
        let display = display.to_lowercase();
        match self.door {
            Door::EveryRequest => display.contains("login ip ranges on every request"),
            Door::AppRelaxation => {
                display.contains("ip relaxation") && display.contains(&self.app.to_lowercase())
            }
        }
    }
}

/// What attribution found: changes newest first, the drifted profiles no entry names, and
/// notes on anything that limited the answer (an error, a truncated window).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributionResult {
    pub attributions: Vec<Attribution>,
    pub unattributed: Vec<ProfileName>,
    pub notes: Vec<String>,
    /// Changes to the drifted side doors, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doors: Vec<DoorAttribution>,
}

impl AttributionResult {
    /// Nothing attributed, with an explanation.
    pub fn note(profiles: &[ProfileName], note: String) -> Self {
        Self {
            attributions: Vec::new(),
            unattributed: profiles.to_vec(),
            notes: vec![note],
            doors: Vec::new(),
        }
    }

    /// The changes to one profile, newest first.
    pub fn for_profile<'a>(
        &'a self,
        profile: &'a ProfileName,
    ) -> impl Iterator<Item = &'a Attribution> + 'a {
        self.attributions
            .iter()
            .filter(move |a| &a.profile == profile)
    }
}

/// The start of the look-back window for a run that started at `run_started`.
pub fn window_start(run_started: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    run_started - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1))
}

/// The query ipguard sends (the simulated org parses exactly this shape).
pub fn query(since: DateTime<Utc>) -> String {
    format!(
        "SELECT Id, Action, Section, Display, CreatedDate, CreatedBy.Username, DelegateUser \
         FROM SetupAuditTrail WHERE CreatedDate >= {} ORDER BY CreatedDate DESC LIMIT {QUERY_LIMIT}",
        soql::datetime_literal(since)
    )
}

/// Reads the audit trail since `since` and attributes the drifted `profiles`' changes. Never
/// fails: a Salesforce error becomes a note.
pub async fn attribute(
    client: &MetadataClient,
    profiles: &[ProfileName],
    doors: &[DoorSubject<'_>],
    since: DateTime<Utc>,
    integration_username: &str,
    matchers: &Matchers,
) -> AttributionResult {
    if profiles.is_empty() && doors.is_empty() {
        return AttributionResult::default();
    }
    match client.query_json(&query(since)).await {
        Ok(answer) => {
            let mut result = attribute_records(&answer, profiles, integration_username, matchers);
            result.doors = attribute_doors(&answer, doors, integration_username);
            result
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot read SetupAuditTrail; drift left unattributed");
            AttributionResult::note(profiles, failure_note(&error))
        }
    }
}

/// Why attribution is unavailable, with the fix where there is one.
fn failure_note(error: &SalesforceError) -> String {
    let fix = match error {
        SalesforceError::Rest { code, .. } if code == "API_DISABLED_FOR_ORG" => {
            " Give the integration user the 'API Enabled' permission."
        }
        SalesforceError::Rest { status, code, .. }
            if !error.is_transient()
                && (*status == 403
                    || code.starts_with("INSUFFICIENT_ACCESS")
                    || code == "INVALID_TYPE") =>
        {
            " Reading SetupAuditTrail needs 'View Setup and Configuration': add it to the \
             IPGuard_Integration permission set."
        }
        _ => "",
    };
    format!("drift not attributed: cannot read SetupAuditTrail ({error}).{fix}")
}

/// One audit trail record, as far as attribution needs it.
struct Entry {
    action: String,
    section: String,
    display: String,
    created_at: DateTime<Utc>,
    username: Option<String>,
    delegate_user: Option<String>,
}

fn text(record: &Value, field: &str) -> Option<String> {
    record.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn entry(record: &Value) -> Option<Entry> {
    Some(Entry {
        action: text(record, "Action").unwrap_or_default(),
        section: text(record, "Section").unwrap_or_default(),
        display: text(record, "Display").unwrap_or_default(),
        created_at: soql::parse_datetime(record.get("CreatedDate")?.as_str()?)?,
        username: record
            .get("CreatedBy")
            .and_then(|by| text(by, "Username"))
            .filter(|u| !u.is_empty()),
        delegate_user: text(record, "DelegateUser").filter(|u| !u.is_empty()),
    })
}

/// The changes of the drifted `doors` in a query answer, newest first; ipguard's own and
/// anonymous entries are never blamed.
pub fn attribute_doors(
    answer: &Value,
    doors: &[DoorSubject<'_>],
    integration_username: &str,
) -> Vec<DoorAttribution> {
    let records = answer
        .get("records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut found = Vec::new();
    for entry in records.iter().filter_map(entry) {
        let Some(username) = entry.username.as_ref() else {
            continue;
        };
        if username.eq_ignore_ascii_case(integration_username) {
            continue;
        }
        for subject in doors.iter().filter(|d| d.named_by(&entry.display)) {
            found.push(DoorAttribution {
                door: subject.door,
                changed_by: username.clone(),
                changed_at: entry.created_at,
                action: entry.action.clone(),
                display: entry.display.clone(),
                delegate_user: entry.delegate_user.clone(),
            });
        }
    }
    found.sort_by_key(|a| std::cmp::Reverse(a.changed_at));
    found
}

/// The pure core: a query answer (`{"records": […], "done": …}`) → attributions.
pub fn attribute_records(
    answer: &Value,
    profiles: &[ProfileName],
    integration_username: &str,
    matchers: &Matchers,
) -> AttributionResult {
    let records = answer
        .get("records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let labels: Vec<(&ProfileName, Vec<String>)> = profiles
        .iter()
        .map(|p| (p, matchers.labels_for(p)))
        .collect();
    let mut result = AttributionResult::default();
    let (mut unreadable, mut anonymous) = (0, 0);
    for record in records {
        let Some(entry) = entry(record) else {
            unreadable += 1;
            continue;
        };
        if !matchers.matches(&entry) {
            continue;
        }
        let named = profiles_named(&entry.display, &labels);
        if named.is_empty() {
            continue;
        }
        let Some(username) = &entry.username else {
            // Without a username the entry could be ipguard's own: never guess.
            anonymous += 1;
            continue;
        };
        if username.eq_ignore_ascii_case(integration_username) {
            continue; // ipguard's own deploy
        }
        for profile in named {
            result.attributions.push(Attribution {
                profile: profile.clone(),
                changed_by: username.clone(),
                changed_at: entry.created_at,
                action: entry.action.clone(),
                display: entry.display.clone(),
                delegate_user: entry.delegate_user.clone(),
            });
        }
    }
    result
        .attributions
        .sort_by_key(|a| std::cmp::Reverse(a.changed_at));
    result.unattributed = profiles
        .iter()
        .filter(|p| result.for_profile(p).next().is_none())
        .cloned()
        .collect();
    let truncated =
        answer.get("done").and_then(Value::as_bool) == Some(false) || records.len() >= QUERY_LIMIT;
    if truncated {
        result.notes.push(format!(
            "the audit trail holds more than {} entries in the window; older changes may be missing",
            records.len()
        ));
    }
    if anonymous > 0 {
        result.notes.push(format!(
            "{anonymous} matching audit entries carry no CreatedBy.Username and were not attributed"
        ));
    }
    if unreadable > 0 {
        result.notes.push(format!(
            "{unreadable} audit entries without a readable CreatedDate were skipped"
        ));
    }
    if !result.unattributed.is_empty() && result.notes.is_empty() {
        result.notes.push(format!(
            "no audit entry in the window names {}: the change may be older, or Setup shows a \
             different profile label (configure it in the attribution labels)",
            result
                .unattributed
                .iter()
                .map(ProfileName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    result
}

/// The profiles whose label `display` names, as a whole phrase (not inside a longer word). When
/// several do ("Custom: Support" and "Custom: Support Tier 2"), the longest label wins.
fn profiles_named<'a>(
    display: &str,
    labels: &[(&'a ProfileName, Vec<String>)],
) -> Vec<&'a ProfileName> {
    let display = display.to_lowercase();
    let mut best = 0;
    let mut named = Vec::new();
    for (profile, candidates) in labels {
        let longest = candidates
            .iter()
            .map(|l| l.to_lowercase())
            .filter(|l| mentions(&display, l))
            .map(|l| l.chars().count())
            .max();
        match longest {
            Some(len) if len > best => {
                best = len;
                named = vec![*profile];
            }
            Some(len) if len == best => named.push(*profile),
            _ => {}
        }
    }
    named
}

/// `needle` occurs in `haystack` with no letter or digit right before or after it.
fn mentions(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ME: &str = "integration@ipguard.example";

    fn name(n: &str) -> ProfileName {
        ProfileName::parse(n).unwrap()
    }

    fn record(by: Option<&str>, at: &str, display: &str) -> Value {
        json!({
            "attributes": {"type": "SetupAuditTrail"},
            "Id": "0Ym000000000001", "Action": "profileLoginIpRangeChanged",
            "Section": "Manage Users", "Display": display, "CreatedDate": at,
            "CreatedBy": by.map(|u| json!({"attributes": {"type": "User"}, "Username": u})),
            "DelegateUser": null,
        })
    }

    fn answer(records: Vec<Value>) -> Value {
        json!({"totalSize": records.len(), "done": true, "records": records})
    }

    #[test]
    fn door_changes_are_attributed_to_the_admin_never_to_ipguard() {
        let records = answer(vec![
            record(
                Some("admin@acme.example"),
                "2026-11-01T10:00:00.000+0000",
                "Changed Enforce login IP ranges on every request from On to Off",
            ),
            record(
                Some(ME),
                "2026-11-01T10:05:00.000+0000",
                "Changed Enforce login IP ranges on every request from Off to On",
            ),
            record(
                Some("admin@acme.example"),
                "2026-11-01T10:01:00.000+0000",
                "Changed IP relaxation for OtherApp from Enforce to Bypass",
            ),
            record(
                None,
                "2026-11-01T10:02:00.000+0000",
                "Changed IP relaxation for IPGuard from Enforce to Bypass",
            ),
        ]);
        let doors = [
            DoorSubject {
                door: Door::EveryRequest,
                app: "IPGuard",
            },
            DoorSubject {
                door: Door::AppRelaxation,
                app: "IPGuard",
            },
        ];
        let found = attribute_doors(&records, &doors, ME);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].door, Door::EveryRequest);
        assert_eq!(found[0].changed_by, "admin@acme.example");
    }

    #[test]
    fn someone_elses_edit_is_attributed_and_ipguards_own_is_not() {
        let support = name("Custom%3A Support");
        let result = attribute_records(
            &answer(vec![
                record(
                    Some(ME),
                    "2024-05-01T12:05:00.000+0000",
                    "Changed login IP range for profile Custom: Support from a to b",
                ),
                record(
                    Some("admin@acme.example"),
                    "2024-05-01T12:00:00.000+0000",
                    "Changed login IP range for profile Custom: Support from 0.0.0.0 - 255.255.255.255 to b",
                ),
                record(
                    Some("admin@acme.example"),
                    "2024-05-01T11:00:00.000+0000",
                    "Changed password policy for profile Custom: Support",
                ),
            ]),
            std::slice::from_ref(&support),
            "Integration@IPGuard.example",
            &Matchers::default(),
        );
        assert_eq!(result.attributions.len(), 1, "{result:?}");
        let a = &result.attributions[0];
        assert_eq!(a.profile, support);
        assert_eq!(a.changed_by, "admin@acme.example");
        assert_eq!(
            a.changed_at,
            soql::parse_datetime("2024-05-01T12:00:00Z").unwrap()
        );
        assert!(result.unattributed.is_empty() && result.notes.is_empty());
    }

    #[test]
    fn labels_match_as_whole_phrases_and_the_longest_wins() {
        let (short, long, admin) = (
            name("Custom%3A Support"),
            name("Custom%3A Support Tier 2"),
            name("Admin"),
        );
        let result = attribute_records(
            &answer(vec![
                record(
                    Some("a@x"),
                    "2024-05-01T12:00:00Z",
                    "Changed Login IP Ranges for profile custom: support tier 2",
                ),
                record(
                    Some("b@x"),
                    "2024-05-01T11:00:00Z",
                    "Changed Login IP Ranges for profile System Administrator",
                ),
                record(
                    Some("c@x"),
                    "2024-05-01T10:00:00Z",
                    "Changed Login IP Ranges for profile Custom: Supporters",
                ),
            ]),
            &[short.clone(), long.clone(), admin.clone()],
            ME,
            &Matchers::default(),
        );
        let who: Vec<(&str, &str)> = result
            .attributions
            .iter()
            .map(|a| (a.profile.as_str(), a.changed_by.as_str()))
            .collect();
        assert_eq!(who, [("Custom%3A Support Tier 2", "a@x"), ("Admin", "b@x")]);
        assert_eq!(result.unattributed, [short]);
        assert_eq!(result.notes.len(), 1);
    }

    #[test]
    fn configured_matchers_and_labels_apply() {
        let sales = name("Sales_Team");
        let matchers = Matchers {
            sections: vec!["manage users".into()],
            display_contains: Vec::new(),
            actions: vec!["PROFILELOGINIPRANGECHANGED".into()],
            labels: BTreeMap::from([("Sales_Team".into(), "Sales (EMEA)".into())]),
        };
        let result = attribute_records(
            &answer(vec![record(
                Some("a@x"),
                "2024-05-01T12:00:00Z",
                "Profile Sales (EMEA): allowed range edited",
            )]),
            std::slice::from_ref(&sales),
            ME,
            &matchers,
        );
        assert_eq!(result.attributions.len(), 1, "{result:?}");
    }

    #[test]
    fn entries_without_a_username_or_date_are_never_guessed() {
        let support = name("Custom%3A Support");
        let mut answer = answer(vec![
            record(
                None,
                "2024-05-01T12:00:00Z",
                "login IP range Custom: Support",
            ),
            record(Some("a@x"), "not a date", "login IP range Custom: Support"),
        ]);
        answer["done"] = json!(false);
        let result = attribute_records(
            &answer,
            std::slice::from_ref(&support),
            ME,
            &Matchers::default(),
        );
        assert!(result.attributions.is_empty());
        assert_eq!(result.unattributed, [support]);
        assert_eq!(result.notes.len(), 3, "{:?}", result.notes);
    }

    #[test]
    fn the_query_is_the_documented_shape() {
        let since = soql::parse_datetime("2024-05-01T12:00:00.250Z").unwrap();
        assert_eq!(
            query(since),
            "SELECT Id, Action, Section, Display, CreatedDate, CreatedBy.Username, DelegateUser \
             FROM SetupAuditTrail WHERE CreatedDate >= 2024-05-01T12:00:00Z \
             ORDER BY CreatedDate DESC LIMIT 200"
        );
        assert_eq!(
            window_start(since, DEFAULT_WINDOW),
            soql::parse_datetime("2024-04-30T12:00:00.250Z").unwrap()
        );
    }

    #[test]
    fn failures_become_notes_with_the_fix() {
        let denied = SalesforceError::Rest {
            status: 403,
            code: "INSUFFICIENT_ACCESS".into(),
            message: "no".into(),
        };
        assert!(failure_note(&denied).contains("View Setup and Configuration"));
        let down = SalesforceError::Transport("refused".into());
        assert!(failure_note(&down).starts_with("drift not attributed"));
    }
}
