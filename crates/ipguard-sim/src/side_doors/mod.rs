//! The side doors around a profile's login IP ranges, as records the org keeps, reads back
//! (readMetadata), deploys and audits:
//!
//! - SecuritySettings `Security` › `sessionSettings` ("Enforce login IP ranges on every
//!   request" among them). A deploy is PARTIAL: only the `sessionSettings` fields the file
//!   names change, every other stored field keeps its value. A GUESS on Salesforce's semantics
//!   that tools widely rely on (partial `Security.settings` files deploy fine; issue16 facts
//!   §3) — no document says omitted scalars are untouched. List-valued settings are replaced
//!   wholesale (official for `networkAccess`), which is why the sim refuses every other child
//!   of SecuritySettings rather than pretend it took effect.
//! - Each External Client App's `ExtlClntAppOauthConfigurablePolicies` (`<App>_oauthPlcy`,
//!   `extlClntAppOauthPolicies/<member>.ecaOauthPlcy`, official: facts §5). A deploy REPLACES
//!   the record: a field the file omits is gone. A GUESS (facts §5: no official wording; the
//!   documented defaults of omitted booleans suggest it) that ipguard's read-modify-write
//!   must survive, so the sim makes it bite.
//! - Legacy connected apps (`connectedApps/<Name>.connectedApp`, official: facts §6). A
//!   deploy REPLACES the record too (GUESS, same reasoning); the sim creates none (connected app
//!   creation is restricted as of Spring '26, facts §6).
//!
//! An admin's change through the [`super::SimOrg`] setters and an applied deploy both append
//! SetupAuditTrail entries, one per changed field. Their Section, Action and Display are
//! GUESSES (Salesforce documents none of them): see the constants below.

use chrono::{DateTime, Utc};

use super::deploy::{Content, Org, schema_order};
use super::ids;
use super::state::{Actor, SimState};
use ipguard_wire::ranges::LoginIpRange;
use ipguard_wire::side_doors::{
    CONNECTED_APP_OAUTH_POLICY_SEQUENCE, CONNECTED_APP_SEQUENCE, ECA_OAUTH_POLICIES_SEQUENCE,
    SECURITY_SETTINGS_SEQUENCE, SESSION_SETTINGS_SEQUENCE,
};
use ipguard_wire::xml::{self, Element, METADATA_NS};

mod files;

pub(crate) use files::{
    read_connected_app, read_eca_policies, read_security_settings, write_connected_app,
    write_eca_policies, write_security_settings,
};

/// SetupAuditTrail Section of a Session Settings change (GUESS: Setup's menu name).
pub const SESSION_SETTINGS_SECTION: &str = "Session Settings";
/// SetupAuditTrail Section of a connected app change (GUESS).
pub const CONNECTED_APPS_SECTION: &str = "Connected Apps";
/// SetupAuditTrail Section of an External Client App policy change (GUESS).
pub const EXTERNAL_CLIENT_APPS_SECTION: &str = "External Client Apps";
/// SetupAuditTrail Actions of the side doors (GUESSES, like [`super::AUDIT_ACTION`]).
pub const SESSION_SETTINGS_ACTION: &str = "sessionSettingsChanged";
pub const CONNECTED_APP_ACTION: &str = "connectedAppChanged";
pub const EXTERNAL_CLIENT_APP_ACTION: &str = "externalClientAppPolicyChanged";

/// `ConnectedAppOauthConfig`'s XSD sequence (metadata.wsdl v66, l.7646).
const CONNECTED_APP_OAUTH_CONFIG_SEQUENCE: &[&str] = &[
    "assetTokenConfig",
    "callbackUrl",
    "certificate",
    "consumerKey",
    "consumerSecret",
    "idTokenConfig",
    "isAdminApproved",
    "isClientCredentialEnabled",
    "isCodeCredentialEnabled",
    "isCodeCredentialPostOnly",
    "isConsumerSecretOptional",
    "isIntrospectAllTokens",
    "isNamedUserJwtEnabled",
    "isPkceRequired",
    "isRefreshTokenRotationEnabled",
    "isSecretRequiredForRefreshToken",
    "isSecretRequiredForTokenExchange",
    "isTokenExchangeEnabled",
    "oauthClientCredentialUser",
    "scopes",
    "singleLogoutUrl",
];

/// `SessionSettings` fields that are not `xsd:boolean` (metadata.wsdl v66, l.32805).
const SESSION_TEXT_FIELDS: &[&str] = &[
    "grantCameraAccess",
    "grantMicrophoneAccess",
    "lockerServiceAPIVersion",
    "lockerTrustedResources",
    "logoutURL",
    "referrerPolicyDirective",
    "sessionTimeout",
    "untrustedRedirect",
    "welcomeEmailTemplateId",
];

/// The `SessionTimeout` enumeration (metadata.wsdl v66).
const SESSION_TIMEOUTS: &[&str] = &[
    "TwentyFourHours",
    "TwelveHours",
    "EightHours",
    "FourHours",
    "TwoHours",
    "NinetyMinutes",
    "SixtyMinutes",
    "ThirtyMinutes",
    "FifteenMinutes",
];

/// `ipRelaxationPolicyType` values (official, facts §5; a public repo claims
/// `Enforce_relaxrefresh` — the sim takes the documented spelling only).
pub(crate) const ECA_RELAXATIONS: &[&str] = &[
    "Enforce",
    "Bypass",
    "Bypass_2factor",
    "Enforce_RelaxRefresh",
];
/// `oauthPolicy/ipRelaxation` values (CODE-sourced, facts §6).
pub(crate) const CONNECTED_APP_RELAXATIONS: &[&str] = &[
    "ENFORCE",
    "BYPASS",
    "BYPASS_2FACTOR",
    "ENFORCE_RELAXREFRESH",
];

/// Ordered (field or `parent/child` path) → text.
pub(crate) type Fields = Vec<(String, String)>;

/// An External Client App: `ExternalClientApplication` (`0xI…`, a GUESSED key prefix) and
/// its OAuth policies (flat text fields).
pub(crate) struct EcaRecord {
    pub name: String,
    pub id: String,
    pub policies: Fields,
}

impl EcaRecord {
    /// An app with the policies a new External Client App plausibly has (GUESS):
    /// admin-approved users, no client credentials flow, infinite refresh tokens.
    pub fn new(name: &str, ip_relaxation: &str) -> Self {
        let policies = [
            ("externalClientApplication", name.to_owned()),
            ("ipRelaxationPolicyType", ip_relaxation.to_owned()),
            ("isClientCredentialsFlowEnabled", "false".to_owned()),
            ("label", format!("{name} OAuth policies")),
            (
                "permittedUsersPolicyType",
                "AdminApprovedPreAuthorized".to_owned(),
            ),
            ("refreshTokenPolicyType", "Infinite".to_owned()),
        ];
        Self {
            name: name.to_owned(),
            id: ids::mint("0xI"),
            policies: policies
                .into_iter()
                .map(|(f, v)| (f.to_owned(), v))
                .collect(),
        }
    }

    fn get(&self, field: &str) -> Option<&str> {
        get(&self.policies, field)
    }
}

/// A legacy connected app: `ConnectedApplication` (`0H4…`) and its metadata record,
/// flattened (`contactEmail`, `oauthPolicy/ipRelaxation`, …).
pub(crate) struct ConnectedAppRecord {
    pub name: String,
    pub id: String,
    pub fields: Fields,
}

impl ConnectedAppRecord {
    pub fn new(name: &str, ip_relaxation: &str) -> Self {
        let consumer_key = format!("3MVG9SimulatedConnectedApp.{}", ids::token_secret(40));
        let fields = [
            ("contactEmail", super::ADMIN_USERNAME.to_owned()),
            ("label", name.to_owned()),
            (
                "oauthConfig/callbackUrl",
                "https://login.salesforce.com/services/oauth2/success".to_owned(),
            ),
            ("oauthConfig/consumerKey", consumer_key),
            ("oauthPolicy/ipRelaxation", ip_relaxation.to_owned()),
            ("oauthPolicy/refreshTokenPolicy", "infinite".to_owned()),
        ];
        Self {
            name: name.to_owned(),
            id: ids::mint("0H4"),
            fields: fields.into_iter().map(|(f, v)| (f.to_owned(), v)).collect(),
        }
    }
}

fn get<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(f, _)| f == name)
        .map(|(_, v)| v.as_str())
}

fn set(fields: &mut Fields, sequence: &[&str], name: &str, value: Option<&str>) {
    match value {
        None => fields.retain(|(f, _)| f != name),
        Some(value) => match fields.iter_mut().find(|(f, _)| f == name) {
            Some(entry) => entry.1 = value.to_owned(),
            None => {
                fields.push((name.to_owned(), value.to_owned()));
                sort_by_sequence(fields, sequence);
            }
        },
    }
}

/// Stable sort by each entry's first path segment's place in `sequence` (unknown last).
fn sort_by_sequence(fields: &mut Fields, sequence: &[&str]) {
    fields.sort_by_key(|(f, _)| {
        let head = f.split('/').next().unwrap_or_default();
        sequence
            .iter()
            .position(|s| *s == head)
            .unwrap_or(usize::MAX)
    });
}

/// The sessionSettings a new org plausibly has (GUESS beyond the WSDL's field names):
/// a few realistic defaults, `enforceIpRangesEveryRequest` as configured.
pub(crate) fn default_session_settings(enforce_ip_ranges_every_request: bool) -> Fields {
    let mut fields: Fields = [
        ("enableCSRFOnGet", "true"),
        ("enableCSRFOnPost", "true"),
        ("enforceIpRangesEveryRequest", "false"),
        ("forceLogoutOnSessionTimeout", "false"),
        ("lockSessionsToIp", "false"),
        ("requireHttpOnly", "true"),
        ("sessionTimeout", "TwoHours"),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_owned(), v.to_owned()))
    .collect();
    set(
        &mut fields,
        SESSION_SETTINGS_SEQUENCE,
        "enforceIpRangesEveryRequest",
        Some(flag(enforce_ip_ranges_every_request)),
    );
    fields
}

fn flag(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Same fields with the same texts, in any order.
pub(crate) fn same_fields(a: &Fields, b: &Fields) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    a.sort();
    b.sort();
    a == b
}

// ---------------------------------------------------------------------------------------
// Changes (setters and deploys), audited

/// What Setup calls a session setting in the audit trail (GUESS; the field name otherwise).
fn session_label(field: &str) -> &str {
    match field {
        "enforceIpRangesEveryRequest" => "Enforce login IP ranges on every request",
        "lockSessionsToIp" => "Lock sessions to the IP address from which they originated",
        "sessionTimeout" => "Timeout value",
        "forceLogoutOnSessionTimeout" => "Force logout on session timeout",
        other => other,
    }
}

fn shown(value: Option<&str>) -> String {
    match value {
        None | Some("") => "(none)".to_owned(),
        Some("true") => "On".to_owned(),
        Some("false") => "Off".to_owned(),
        Some(other) => other.to_owned(),
    }
}

/// Every path whose value(s) differ between `before` and `after`, with both sides joined.
fn changed_paths(before: &Fields, after: &Fields) -> Vec<(String, Option<String>, Option<String>)> {
    let values = |fields: &Fields, path: &str| {
        let all: Vec<&str> = fields
            .iter()
            .filter(|(f, _)| f == path)
            .map(|(_, v)| v.as_str())
            .collect();
        (!all.is_empty()).then(|| all.join(", "))
    };
    let mut paths: Vec<&String> = before.iter().chain(after.iter()).map(|(f, _)| f).collect();
    paths.dedup();
    let mut seen = std::collections::BTreeSet::new();
    paths
        .into_iter()
        .filter(|p| seen.insert(p.as_str()))
        .filter_map(|p| {
            let (a, b) = (values(before, p), values(after, p));
            (a != b).then(|| (p.clone(), a, b))
        })
        .collect()
}

impl SimState {
    /// Sets these session settings (the others keep their values), auditing each change.
    pub fn update_session_settings(&mut self, changes: &Fields, actor: Actor, at: DateTime<Utc>) {
        let before = self.session_settings.clone();
        for (name, value) in changes {
            set(
                &mut self.session_settings,
                SESSION_SETTINGS_SEQUENCE,
                name,
                Some(value),
            );
        }
        for (field, old, new) in changed_paths(&before, &self.session_settings.clone()) {
            let display = format!(
                "Changed {} from {} to {}",
                session_label(&field),
                shown(old.as_deref()),
                shown(new.as_deref())
            );
            self.audit_entry(
                SESSION_SETTINGS_ACTION,
                SESSION_SETTINGS_SECTION,
                display,
                actor,
                at,
            );
        }
    }

    pub fn session_setting(&self, name: &str) -> Option<&str> {
        get(&self.session_settings, name)
    }

    pub fn eca(&self, app: &str) -> Option<&EcaRecord> {
        self.external_client_apps.iter().find(|a| a.name == app)
    }

    pub fn connected_app_record(&self, app: &str) -> Option<&ConnectedAppRecord> {
        self.connected_apps.iter().find(|a| a.name == app)
    }

    /// The app's OAuth policies become exactly `policies`, auditing each changed field.
    pub fn replace_eca_policies(
        &mut self,
        app: &str,
        policies: Fields,
        actor: Actor,
        at: DateTime<Utc>,
    ) {
        let Some(record) = self.external_client_apps.iter_mut().find(|a| a.name == app) else {
            return;
        };
        let before = std::mem::replace(&mut record.policies, policies.clone());
        for (field, old, new) in changed_paths(&before, &policies) {
            let what = if field == "ipRelaxationPolicyType" {
                "IP relaxation".to_owned()
            } else {
                field
            };
            let display = format!(
                "Changed {what} for {app} from {} to {}",
                shown(old.as_deref()),
                shown(new.as_deref())
            );
            self.audit_entry(
                EXTERNAL_CLIENT_APP_ACTION,
                EXTERNAL_CLIENT_APPS_SECTION,
                display,
                actor,
                at,
            );
        }
    }

    /// The connected app becomes exactly `fields`, auditing each changed field.
    pub fn replace_connected_app(
        &mut self,
        app: &str,
        fields: Fields,
        actor: Actor,
        at: DateTime<Utc>,
    ) {
        let Some(record) = self.connected_apps.iter_mut().find(|a| a.name == app) else {
            return;
        };
        let before = std::mem::replace(&mut record.fields, fields.clone());
        for (path, old, new) in changed_paths(&before, &fields) {
            let what = if path == "oauthPolicy/ipRelaxation" {
                "IP relaxation".to_owned()
            } else {
                path
            };
            let display = format!(
                "Changed {what} for {app} from {} to {}",
                shown(old.as_deref()),
                shown(new.as_deref())
            );
            self.audit_entry(
                CONNECTED_APP_ACTION,
                CONNECTED_APPS_SECTION,
                display,
                actor,
                at,
            );
        }
    }

    /// The admin sets (or with `None` removes) one field of an app's OAuth policies.
    pub fn set_eca_policy_field(&mut self, app: &str, field: &str, value: Option<&str>) {
        let record = self
            .eca(app)
            .unwrap_or_else(|| panic!("no External Client App named {app}"));
        let mut policies = record.policies.clone();
        set(&mut policies, ECA_OAUTH_POLICIES_SEQUENCE, field, value);
        self.replace_eca_policies(app, policies, Actor::Admin, Utc::now());
    }

    /// `set_external_client_app`: creates the app (or sets its relaxation); `None` deletes it
    /// with its grants.
    pub fn set_external_client_app(&mut self, name: &str, ip_relaxation: Option<&str>) {
        match (ip_relaxation, self.eca(name).is_some()) {
            (Some(policy), true) => {
                self.set_eca_policy_field(name, "ipRelaxationPolicyType", Some(policy));
            }
            (Some(policy), false) => self.external_client_apps.push(EcaRecord::new(name, policy)),
            (None, _) => {
                if let Some(app) = self.eca(name) {
                    let id = app.id.clone();
                    self.entity_access.retain(|r| r.entity_id != id);
                }
                self.external_client_apps.retain(|a| a.name != name);
            }
        }
    }

    /// `set_connected_app`: creates the app (or sets its `oauthPolicy/ipRelaxation`); `None`
    /// deletes it with its grants.
    pub fn set_connected_app(&mut self, name: &str, ip_relaxation: Option<&str>) {
        match (ip_relaxation, self.connected_app_record(name)) {
            (Some(policy), Some(app)) => {
                let mut fields = app.fields.clone();
                set(
                    &mut fields,
                    CONNECTED_APP_SEQUENCE,
                    "oauthPolicy/ipRelaxation",
                    Some(policy),
                );
                self.replace_connected_app(name, fields, Actor::Admin, Utc::now());
            }
            (Some(policy), None) => self
                .connected_apps
                .push(ConnectedAppRecord::new(name, policy)),
            (None, app) => {
                if let Some(app) = app {
                    let id = app.id.clone();
                    self.entity_access.retain(|r| r.entity_id != id);
                }
                self.connected_apps.retain(|a| a.name != name);
            }
        }
    }

    /// The External Client App's `ipRelaxationPolicyType`, else the connected app's
    /// `oauthPolicy/ipRelaxation`.
    pub fn ip_relaxation(&self, app: &str) -> Option<String> {
        if let Some(eca) = self.eca(app) {
            return eca.get("ipRelaxationPolicyType").map(str::to_owned);
        }
        self.connected_app_record(app)
            .and_then(|a| get(&a.fields, "oauthPolicy/ipRelaxation"))
            .map(str::to_owned)
    }
}

impl Org for SimState {
    fn profile_ranges(&self, full_name: &str) -> Option<Vec<LoginIpRange>> {
        self.profile(full_name).map(|p| p.ranges.clone())
    }

    fn session_setting(&self, name: &str) -> Option<String> {
        SimState::session_setting(self, name).map(str::to_owned)
    }

    fn eca_policies(&self, app: &str) -> Option<Vec<(String, String)>> {
        self.eca(app).map(|a| a.policies.clone())
    }

    fn connected_app(&self, name: &str) -> Option<Vec<(String, String)>> {
        self.connected_app_record(name).map(|a| a.fields.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_listed_per_path() {
        let f = |pairs: &[(&str, &str)]| -> Fields {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let changes = changed_paths(
            &f(&[("a", "1"), ("b", "2"), ("s", "x"), ("s", "y")]),
            &f(&[("a", "1"), ("c", "3"), ("s", "x")]),
        );
        assert_eq!(
            changes,
            [
                ("b".to_owned(), Some("2".to_owned()), None),
                (
                    "s".to_owned(),
                    Some("x, y".to_owned()),
                    Some("x".to_owned())
                ),
                ("c".to_owned(), None, Some("3".to_owned())),
            ]
        );
    }
}
