//! Typed configuration from the environment (docs/contract.md §2).
//!
//! Every variable is checked and every problem collected, so an operator fixing Heroku
//! config vars sees the whole list at once instead of one error per deploy. Secrets are
//! held in [`SecretString`] and never appear in `Debug` output or in problem messages.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;
use crate::reconcile::doors::{Door, SideDoors};
use crate::reconcile::guarded::{Entry, ProfileSelection, is_app_name};
use crate::salesforce::auth::SigningKey;
use crate::salesforce::profile::ProfileName;

/// Names of the environment variables, so callers (e.g. `check`) can refer to them.
pub mod vars {
    pub const PORT: &str = "PORT";
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const SALESFORCE_LOGIN_URL: &str = "SALESFORCE_LOGIN_URL";
    pub const SALESFORCE_AUDIENCE: &str = "SALESFORCE_AUDIENCE";
    pub const SALESFORCE_CLIENT_ID: &str = "SALESFORCE_CLIENT_ID";
    pub const SALESFORCE_USERNAME: &str = "SALESFORCE_USERNAME";
    pub const SALESFORCE_PRIVATE_KEY: &str = "SALESFORCE_PRIVATE_KEY";
    pub const SALESFORCE_PRIVATE_KEY_FILE: &str = "SALESFORCE_PRIVATE_KEY_FILE";
    pub const SALESFORCE_ORG_ID: &str = "SALESFORCE_ORG_ID";
    pub const SALESFORCE_API_VERSION: &str = "SALESFORCE_API_VERSION";
    pub const IPGUARD_PROFILES: &str = "IPGUARD_PROFILES";
    pub const IPGUARD_APP: &str = "IPGUARD_APP";
    pub const IPGUARD_SIDE_DOORS: &str = "IPGUARD_SIDE_DOORS";
    pub const IPGUARD_SOURCE_IPS: &str = "IPGUARD_SOURCE_IPS";
    pub const HEROKU_SPACE: &str = "HEROKU_SPACE";
    pub const HEROKU_API_TOKEN: &str = "HEROKU_API_TOKEN";
    pub const HEROKU_API_URL: &str = "HEROKU_API_URL";
    pub const IPGUARD_POLICY: &str = "IPGUARD_POLICY";
    pub const IPGUARD_EXACT_PROFILES: &str = "IPGUARD_EXACT_PROFILES";
    pub const IPGUARD_KEEP_WITHIN: &str = "IPGUARD_KEEP_WITHIN";
    pub const IPGUARD_MODE: &str = "IPGUARD_MODE";
    pub const IPGUARD_RESYNC_INTERVAL: &str = "IPGUARD_RESYNC_INTERVAL";
    pub const IPGUARD_DEBOUNCE: &str = "IPGUARD_DEBOUNCE";
    pub const IPGUARD_DEPLOY_TIMEOUT: &str = "IPGUARD_DEPLOY_TIMEOUT";
    pub const EVENTS_JWT_CERTS: &str = "EVENTS_JWT_CERTS";
    pub const EVENTS_JWT_CERTS_FILE: &str = "EVENTS_JWT_CERTS_FILE";
    pub const EVENTS_JWT_ISSUER: &str = "EVENTS_JWT_ISSUER";
    pub const EVENTS_JWT_AUDIENCE: &str = "EVENTS_JWT_AUDIENCE";
    pub const OUTBOUND_MESSAGE_TOKEN: &str = "OUTBOUND_MESSAGE_TOKEN";
    pub const IPGUARD_ADMIN_TOKEN: &str = "IPGUARD_ADMIN_TOKEN";
    pub const IPGUARD_ALERT_WEBHOOK_URL: &str = "IPGUARD_ALERT_WEBHOOK_URL";
    pub const RUST_LOG: &str = "RUST_LOG";
    pub const IPGUARD_ORGS: &str = "IPGUARD_ORGS";
}
use vars::*;

mod orgs;
pub use orgs::{OrgChoiceError, OrgKey, OrgSettings};
mod salesforce;
mod values;
use values::{
    check_token_length, constant_url, parse_base_url, parse_database_url, parse_http_url,
    parse_source_ip, unescape_newlines, validate_public_keys,
};

const DEFAULT_PORT: u16 = 8080;
/// `IPGUARD_APP`: the External Client App `salesforce-metadata/` installs.
const DEFAULT_APP: &str = "IPGuard";
const DEFAULT_SQLITE_PATH: &str = "ipguard.db";
const LOGIN_AUDIENCE: &str = "https://login.salesforce.com";
const TEST_AUDIENCE: &str = "https://test.salesforce.com";
const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
const DEFAULT_HEROKU_API_URL: &str = "https://api.heroku.com";
const DEFAULT_API_VERSION: &str = "66.0";
const DEFAULT_RESYNC: Duration = Duration::from_secs(10 * 60);
const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);
const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_RUST_LOG: &str = "info";
const MIN_TOKEN_CHARS: usize = 16;
const RSA_KEY_EXPECTED: &str =
    "expected an RSA private key in PEM (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1)";
const HTTPS_ONLY: &str =
    "must be an https:// URL (http:// is accepted only for 127.0.0.1 or localhost)";

/// What the command being run needs; anything it does not need may stay unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// At least one IP source (static list or Heroku space).
    pub sources: bool,
    /// Salesforce credentials and the managed profiles.
    pub salesforce: bool,
    /// The JWT settings for `/salesforce/events`.
    pub events: bool,
}

impl Needs {
    /// `ranges`: only the sources.
    pub fn sources() -> Needs {
        Needs {
            sources: true,
            ..Needs::default()
        }
    }

    /// `plan`, `apply`, `check`: sources, Salesforce credentials and profiles.
    pub fn salesforce() -> Needs {
        Needs {
            salesforce: true,
            ..Needs::sources()
        }
    }

    /// `serve`: the same as [`Needs::salesforce`]; the event endpoint refuses requests
    /// while its JWT settings are unset, so they stay optional.
    pub fn serve() -> Needs {
        Needs::salesforce()
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable as the operator sets it (`IPGUARD_ORG_UAT_SALESFORCE_ORG_ID` for an org
    /// of `IPGUARD_ORGS`).
    pub variable: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Everything wrong with the configuration, one problem per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render_problems(&self.problems))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

fn render_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ConfigProblem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite {
        path: PathBuf,
    },
    /// The whole URL is secret: Heroku Postgres URLs carry the password.
    Postgres {
        url: SecretString,
    },
}

#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// Scheme and host only. `Url` always serialises an empty path as `/`, so join
    /// endpoint paths with `login_url.join("/services/oauth2/token")`.
    pub login_url: Url,
    /// The JWT bearer `aud`.
    pub audience: String,
    /// Present only when all three are set and well-formed: nothing downstream checks again.
    pub credentials: Option<Credentials>,
    pub org_id: Option<OrgId>,
    pub api_version: String,
}

impl SalesforceSettings {
    /// The integration user's username, when the credentials are complete.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.username.as_str())
    }
}

/// What the JWT bearer flow signs in with (docs/contract.md §2).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The External Client App's consumer key.
    pub client_id: String,
    /// The integration user's username, in email form.
    pub username: String,
    /// The RSA private key, parsed.
    pub key: SigningKey,
}

#[derive(Debug, Clone)]
pub struct HerokuSettings {
    pub space: String,
    pub api_token: SecretString,
    pub api_url: Url,
}

#[derive(Debug, Clone)]
pub struct EventsJwtSettings {
    /// One or more `CERTIFICATE` / `PUBLIC KEY` PEM blocks (public material).
    pub keys_pem: String,
    pub issuer: String,
    pub audience: String,
}

/// A value that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind}; use {choices}")]
pub struct InvalidChoice {
    pub value: String,
    kind: &'static str,
    choices: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Keep other ranges, add the desired ones.
    #[default]
    Merge,
    /// Exactly the desired ranges.
    Exact,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Merge => "merge",
            Policy::Exact => "exact",
        }
    }
}

impl FromStr for Policy {
    type Err = InvalidChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "merge" => Ok(Policy::Merge),
            "exact" => Ok(Policy::Exact),
            other => Err(InvalidChoice {
                value: other.to_owned(),
                kind: "policy",
                choices: "`merge` (keep other ranges) or `exact` (only the desired ranges)",
            }),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Deploy fixes.
    #[default]
    Enforce,
    /// Plan and record; deploys only with `checkOnly`.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry-run",
        }
    }
}

impl FromStr for Mode {
    type Err = InvalidChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "dry-run" => Ok(Mode::DryRun),
            other => Err(InvalidChoice {
                value: other.to_owned(),
                kind: "mode",
                choices: "`enforce` (deploy fixes) or `dry-run` (plan only)",
            }),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub database: DatabaseUrl,
    /// The guarded orgs (docs/contract.md §8): one, keyless, without `IPGUARD_ORGS`.
    pub orgs: Vec<OrgSettings>,
    /// Sources every org shares (each org may add its own).
    pub source_ips: Vec<IpNet>,
    pub heroku: Option<HerokuSettings>,
    pub resync_interval: Duration,
    pub debounce: Duration,
    pub deploy_timeout: Duration,
    pub events_jwt: Option<EventsJwtSettings>,
    pub outbound_message_token: Option<SecretString>,
    pub admin_token: Option<SecretString>,
    pub alert_webhook_url: Option<SecretString>,
    pub rust_log: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(needs: Needs) -> Result<Config, ConfigError> {
        // Lossy: a non-UTF-8 value then fails validation instead of silently counting as unset.
        Config::from_lookup(
            |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
            needs,
        )
    }

    /// Reads variables through `lookup`; empty (or all-blank) values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        needs: Needs,
    ) -> Result<Config, ConfigError> {
        let mut loader = Loader {
            lookup: &lookup,
            problems: Vec::new(),
            scope: None,
        };
        let config = loader.load(needs);
        if loader.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                problems: loader.problems,
            })
        }
    }
}

struct Loader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
    /// While one org of `IPGUARD_ORGS` is read: its prefixed variables come first.
    scope: Option<orgs::Scope>,
}

impl Loader<'_> {
    /// The trimmed value; surrounding whitespace is almost always a copy-paste accident.
    /// Inside an org's scope, its `IPGUARD_ORG_<KEY>_…` variable wins over the shared one.
    fn get(&self, variable: &str) -> Option<String> {
        match self.scope.as_ref().and_then(|s| s.lookup_order(variable)) {
            Some((own, shared_default)) => self
                .raw(&own)
                .or_else(|| shared_default.then(|| self.raw(variable)).flatten()),
            None => self.raw(variable),
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Records a problem under the name the operator set (or must set).
    fn problem(&mut self, variable: &str, message: impl Into<String>) {
        let variable = self.reported_name(variable);
        let problem = ConfigProblem {
            variable,
            message: message.into(),
        };
        // A bad shared default is one problem, however many orgs read it.
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// Runs `parse` on a present value; `None` when unset or invalid (problem recorded).
    fn parse_with<T>(
        &mut self,
        variable: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.get(variable)?;
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.problem(variable, message);
                None
            }
        }
    }

    fn require(&mut self, variable: &str, present: bool, why: &str) {
        if !present {
            self.problem(variable, format!("required {why}"));
        }
    }

    fn load(&mut self, needs: Needs) -> Config {
        let port = self
            .parse_with(PORT, |v| {
                v.parse::<u16>()
                    .map_err(|_| format!("`{v}` is not a port number (0–65535)"))
            })
            .unwrap_or(DEFAULT_PORT);
        let database = self
            .parse_with(DATABASE_URL, parse_database_url)
            .unwrap_or_else(|| DatabaseUrl::Sqlite {
                path: PathBuf::from(DEFAULT_SQLITE_PATH),
            });
        let (source_ips, static_sources_given) = self.load_source_ips();
        let (heroku, heroku_given) = self.load_heroku();
        let orgs = self.load_orgs(needs, static_sources_given || heroku_given);
        let resync_interval = self.duration(IPGUARD_RESYNC_INTERVAL, DEFAULT_RESYNC);
        let debounce = self.duration(IPGUARD_DEBOUNCE, DEFAULT_DEBOUNCE);
        let deploy_timeout = self.duration(IPGUARD_DEPLOY_TIMEOUT, DEFAULT_DEPLOY_TIMEOUT);
        let events_jwt = self.load_events_jwt(needs);
        let outbound_message_token = self.parse_with(OUTBOUND_MESSAGE_TOKEN, |v| {
            check_token_length(v)?;
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(
                    "may contain only A–Z, a–z, 0–9, `_` and `-` because it is a URL path segment; \
                     generate one with `openssl rand -hex 32`"
                        .to_owned(),
                );
            }
            Ok(SecretString::from(v))
        });
        let admin_token = self.parse_with(IPGUARD_ADMIN_TOKEN, |v| {
            check_token_length(v)?;
            Ok(SecretString::from(v))
        });
        let alert_webhook_url = self.parse_with(IPGUARD_ALERT_WEBHOOK_URL, |v| {
            parse_http_url(v)?;
            Ok(SecretString::from(v))
        });
        let rust_log = self
            .parse_with(RUST_LOG, |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .map(|_| v.to_owned())
                    .map_err(|e| {
                        format!(
                            "`{v}` is not a log filter ({e}); e.g. `info` or `ipguard=debug,info`"
                        )
                    })
            })
            .unwrap_or_else(|| DEFAULT_RUST_LOG.to_owned());

        Config {
            port,
            database,
            orgs,
            source_ips,
            heroku,
            resync_interval,
            debounce,
            deploy_timeout,
            events_jwt,
            outbound_message_token,
            admin_token,
            alert_webhook_url,
            rust_log,
        }
    }

    /// `IPGUARD_PROFILES`: full names, `@app:<API name>` and `!<full name>` entries.
    fn load_profiles(&mut self, needs: Needs) -> ProfileSelection {
        let mut selection = ProfileSelection::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut reported = HashSet::new();
        if let Some(raw) = self.get(IPGUARD_PROFILES) {
            for entry in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !seen.insert(entry.to_owned()) {
                    if reported.insert(entry.to_owned()) {
                        self.problem(
                            IPGUARD_PROFILES,
                            format!("`{entry}` is listed more than once"),
                        );
                    }
                    continue;
                }
                match Entry::parse(entry) {
                    Ok(Entry::Profile(p)) => selection.named.push(p),
                    Ok(Entry::App(app)) => selection.apps.push(app),
                    Ok(Entry::Exclude(p)) => selection.excluded.push(p),
                    Err(e) => self.problem(IPGUARD_PROFILES, e.to_string()),
                }
            }
        }
        for excluded in &selection.excluded {
            if selection.named.contains(excluded) {
                self.problem(
                    IPGUARD_PROFILES,
                    format!("`{excluded}` is both listed and excluded (`!{excluded}`)"),
                );
            }
        }
        if needs.salesforce {
            self.require(
                IPGUARD_PROFILES,
                !selection.is_empty(),
                "to call Salesforce: comma-separated profile full names as listMetadata returns them, e.g. `Admin,Custom%3A Integration`, and/or `@app:<API name>` for every profile whose users can use that app",
            );
        }
        selection
    }

    /// `IPGUARD_SIDE_DOORS` (default none) and `IPGUARD_APP` (default `IPGuard`).
    fn load_side_doors(&mut self) -> SideDoors {
        let mut doors = SideDoors {
            guarded: Vec::new(),
            app: DEFAULT_APP.to_owned(),
        };
        if let Some(app) = self.get(IPGUARD_APP) {
            let app = app.trim();
            if is_app_name(app) {
                doors.app = app.to_owned();
            } else {
                self.problem(
                    IPGUARD_APP,
                    "expected the app's API name (letters, digits, `_`), e.g. `IPGuard`",
                );
            }
        }
        if let Some(raw) = self.get(IPGUARD_SIDE_DOORS) {
            for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                match Door::parse(entry) {
                    Ok(door) if !doors.guarded.contains(&door) => doors.guarded.push(door),
                    Ok(_) => {}
                    Err(e) => self.problem(IPGUARD_SIDE_DOORS, e),
                }
            }
        }
        doors
    }

    /// Profiles forced to `exact`: each must be a managed one, or the setting would silently
    /// guard nothing.
    fn load_exact_profiles(&mut self, selection: &ProfileSelection) -> Vec<ProfileName> {
        let Some(raw) = self.get(IPGUARD_EXACT_PROFILES) else {
            return Vec::new();
        };
        let managed = &selection.named;
        let mut names: Vec<ProfileName> = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            // With `@app:` entries the guarded set is known only at run time.
            if selection.apps.is_empty()
                && !managed.is_empty()
                && !managed.iter().any(|m| m == name)
            {
                self.problem(
                    IPGUARD_EXACT_PROFILES,
                    format!(
                        "`{name}` is not in IPGUARD_PROFILES; list managed profile full names \
                         exactly as there (e.g. `Custom%3A Integration`)"
                    ),
                );
            } else if !names.iter().any(|n| n == name) {
                match ProfileName::parse(name) {
                    Ok(profile) => names.push(profile),
                    Err(e) => self.problem(IPGUARD_EXACT_PROFILES, e.to_string()),
                }
            }
        }
        names
    }

    /// CIDRs inside which someone else's range survives under `merge`.
    fn load_keep_within(&mut self) -> Option<Vec<IpNet>> {
        let raw = self.get(IPGUARD_KEEP_WITHIN)?;
        let mut nets = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_source_ip(entry) {
                Ok(net) => nets.push(net.trunc()),
                Err(message) => self.problem(IPGUARD_KEEP_WITHIN, message),
            }
        }
        Some(nets)
    }

    /// The parsed list, and whether the variable named any entry at all (valid or not).
    fn load_source_ips(&mut self) -> (Vec<IpNet>, bool) {
        let Some(raw) = self.get(IPGUARD_SOURCE_IPS) else {
            return (Vec::new(), false);
        };
        let mut nets = Vec::new();
        let mut any = false;
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            any = true;
            match parse_source_ip(entry) {
                Ok(net) => nets.push(net),
                Err(message) => self.problem(IPGUARD_SOURCE_IPS, message),
            }
        }
        (nets, any)
    }

    /// The settings, and whether either Heroku variable was given (valid or not).
    fn load_heroku(&mut self) -> (Option<HerokuSettings>, bool) {
        let api_url = self
            .parse_with(HEROKU_API_URL, |v| parse_base_url(v, true))
            .unwrap_or_else(|| constant_url(DEFAULT_HEROKU_API_URL));
        let space_given = self.get(HEROKU_SPACE).is_some();
        let space = self.parse_with(HEROKU_SPACE, |v| {
            // The name goes into the request path, so only what Heroku allows in names.
            if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                Ok(v.to_owned())
            } else {
                Err(format!(
                    "`{v}` is not a space name or id (letters, digits and `-`)"
                ))
            }
        });
        let api_token = self.get(HEROKU_API_TOKEN).map(SecretString::from);
        match (space_given, api_token.is_some()) {
            (true, false) => self.problem(
                HEROKU_API_TOKEN,
                "required when HEROKU_SPACE is set: an API token that can read the space (`heroku authorizations:create`)",
            ),
            (false, true) => self.problem(
                HEROKU_SPACE,
                "required when HEROKU_API_TOKEN is set: the Private Space's name",
            ),
            _ => {}
        }
        let given = space_given || api_token.is_some();
        let settings = match (space, api_token) {
            (Some(space), Some(api_token)) => Some(HerokuSettings {
                space,
                api_token,
                api_url,
            }),
            _ => None,
        };
        (settings, given)
    }

    fn duration(&mut self, variable: &str, default: Duration) -> Duration {
        self.parse_with(variable, |v| match humantime::parse_duration(v) {
            Ok(d) if d.is_zero() => Err("must be longer than zero".to_owned()),
            Ok(d) => Ok(d),
            Err(e) => Err(format!(
                "`{v}` is not a duration ({e}); use e.g. `10m`, `2s` or `1h 30m`"
            )),
        })
        .unwrap_or(default)
    }

    fn load_events_jwt(&mut self, needs: Needs) -> Option<EventsJwtSettings> {
        let inline = self.get(EVENTS_JWT_CERTS);
        let file = self.get(EVENTS_JWT_CERTS_FILE);
        let certs_given = inline.is_some() || file.is_some();
        let keys_pem = match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    EVENTS_JWT_CERTS_FILE,
                    "set only one of EVENTS_JWT_CERTS (PEM text) and EVENTS_JWT_CERTS_FILE (path)",
                );
                None
            }
            (Some(text), None) => {
                let pem = unescape_newlines(&text);
                match validate_public_keys(&pem) {
                    Ok(()) => Some(pem),
                    Err(message) => {
                        self.problem(EVENTS_JWT_CERTS, message);
                        None
                    }
                }
            }
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(pem) => match validate_public_keys(&pem) {
                    Ok(()) => Some(pem),
                    Err(message) => {
                        self.problem(EVENTS_JWT_CERTS_FILE, format!("`{path}`: {message}"));
                        None
                    }
                },
                Err(e) => {
                    self.problem(EVENTS_JWT_CERTS_FILE, format!("cannot read `{path}`: {e}"));
                    None
                }
            },
            (None, None) => None,
        };
        let issuer = self.get(EVENTS_JWT_ISSUER);
        let audience = self.get(EVENTS_JWT_AUDIENCE);

        // The three only make sense together: a verifier with half its settings would
        // either refuse everything or check less than the operator thinks.
        if needs.events || certs_given || issuer.is_some() || audience.is_some() {
            let why = if needs.events {
                "for /salesforce/events".to_owned()
            } else {
                let set: Vec<&str> = [
                    (certs_given, EVENTS_JWT_CERTS),
                    (issuer.is_some(), EVENTS_JWT_ISSUER),
                    (audience.is_some(), EVENTS_JWT_AUDIENCE),
                ]
                .into_iter()
                .filter_map(|(given, name)| given.then_some(name))
                .collect();
                format!("because {} is set", set.join(" and "))
            };
            self.require(
                EVENTS_JWT_CERTS,
                certs_given,
                &format!("{why}: set EVENTS_JWT_CERTS (PEM) or EVENTS_JWT_CERTS_FILE (path) to the certificate(s) that sign the callouts"),
            );
            self.require(
                EVENTS_JWT_ISSUER,
                issuer.is_some(),
                &format!("{why}: the exact `iss` of the callout JWTs"),
            );
            self.require(
                EVENTS_JWT_AUDIENCE,
                audience.is_some(),
                &format!("{why}: the exact `aud` of the callout JWTs"),
            );
        }

        match (keys_pem, issuer, audience) {
            (Some(keys_pem), Some(issuer), Some(audience)) => Some(EventsJwtSettings {
                keys_pem,
                issuer,
                audience,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
