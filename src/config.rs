//! Typed configuration from the environment (docs/contract.md §2).
//!
//! Every variable is checked and every problem collected, so an operator fixing Heroku
//! config vars sees the whole list at once instead of one error per deploy. Secrets are
//! held in [`SecretString`] and never appear in `Debug` output or in problem messages.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;

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
}
use vars::*;

const DEFAULT_PORT: u16 = 8080;
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
    pub variable: &'static str,
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
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// PEM with real newlines, validated as an RSA private key.
    pub private_key_pem: Option<SecretString>,
    pub org_id: Option<OrgId>,
    pub api_version: String,
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
    pub salesforce: SalesforceSettings,
    /// Profile full names exactly as `listMetadata` returns them (still percent-encoded).
    pub profiles: Vec<String>,
    pub source_ips: Vec<IpNet>,
    pub heroku: Option<HerokuSettings>,
    pub policy: Policy,
    /// Profiles that always use `exact`, whatever `policy` says.
    pub exact_profiles: Vec<String>,
    /// Under `merge`, foreign ranges survive only inside these; `None` keeps them all.
    pub keep_within: Option<Vec<IpNet>>,
    pub mode: Mode,
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
    /// Which policy applies to which profile (docs/contract.md §1 Policy).
    pub fn policy_rules(&self) -> crate::reconcile::plan::PolicyRules {
        crate::reconcile::plan::PolicyRules {
            default: self.policy,
            exact_profiles: self.exact_profiles.clone(),
            keep_within: self.keep_within.clone(),
        }
    }

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
}

impl Loader<'_> {
    /// The trimmed value; surrounding whitespace is almost always a copy-paste accident.
    fn get(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    /// Runs `parse` on a present value; `None` when unset or invalid (problem recorded).
    fn parse_with<T>(
        &mut self,
        variable: &'static str,
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

    fn require(&mut self, variable: &'static str, present: bool, why: &str) {
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
        let salesforce = self.load_salesforce(needs);
        let profiles = self.load_profiles(needs);
        let (source_ips, static_sources_given) = self.load_source_ips();
        let (heroku, heroku_given) = self.load_heroku();
        if needs.sources && !static_sources_given && !heroku_given {
            self.problem(
                IPGUARD_SOURCE_IPS,
                "no IP source configured: set IPGUARD_SOURCE_IPS (comma-separated IPs/CIDRs) \
                 and/or HEROKU_SPACE with HEROKU_API_TOKEN to read the Private Space's outbound IPs",
            );
        }
        let policy = self
            .parse_with(IPGUARD_POLICY, |v| {
                v.parse().map_err(|e: InvalidChoice| e.to_string())
            })
            .unwrap_or_default();
        let exact_profiles = self.load_exact_profiles(&profiles);
        let keep_within = self.load_keep_within();
        let mode = self
            .parse_with(IPGUARD_MODE, |v| {
                v.parse().map_err(|e: InvalidChoice| e.to_string())
            })
            .unwrap_or_default();
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
            salesforce,
            profiles,
            source_ips,
            heroku,
            policy,
            exact_profiles,
            keep_within,
            mode,
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

    fn load_salesforce(&mut self, needs: Needs) -> SalesforceSettings {
        let login_url = self
            .parse_with(SALESFORCE_LOGIN_URL, parse_login_url)
            .unwrap_or_else(|| constant_url(DEFAULT_LOGIN_URL));
        let audience = self
            .parse_with(SALESFORCE_AUDIENCE, |v| {
                parse_http_url(v).map(|_| v.to_owned()).map_err(|e| {
                    format!(
                        "{e}; usually https://login.salesforce.com or https://test.salesforce.com"
                    )
                })
            })
            .unwrap_or_else(|| default_audience(&login_url).to_owned());
        let client_id = self.get(SALESFORCE_CLIENT_ID);
        let username = self.parse_with(SALESFORCE_USERNAME, |v| {
            // Salesforce usernames are always in email form; catching a pasted display
            // name here beats an opaque `invalid_grant` later.
            let shaped = v
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
                && !v.chars().any(char::is_whitespace);
            if shaped {
                Ok(v.to_owned())
            } else {
                Err(format!(
                    "`{v}` is not a Salesforce username; they look like an email address (integration@example.com)"
                ))
            }
        });
        let private_key_pem = self.load_private_key();
        let org_id = self.parse_with(SALESFORCE_ORG_ID, |v| {
            OrgId::parse(v).map_err(|e| e.to_string())
        });
        let api_version = self
            .parse_with(SALESFORCE_API_VERSION, |v| {
                if is_api_version(v) {
                    Ok(v.to_owned())
                } else {
                    Err(format!(
                        "`{v}` is not an API version; use the form `{DEFAULT_API_VERSION}`"
                    ))
                }
            })
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());

        if needs.salesforce {
            let why = "to call Salesforce";
            self.require(
                SALESFORCE_CLIENT_ID,
                client_id.is_some(),
                &format!("{why}: the consumer key of the External Client App"),
            );
            // An invalid username has already been reported; don't add "required" on top.
            let username_given = self.get(SALESFORCE_USERNAME).is_some();
            self.require(
                SALESFORCE_USERNAME,
                username_given,
                &format!("{why}: the integration user's username"),
            );
            let key_given = self.get(SALESFORCE_PRIVATE_KEY).is_some()
                || self.get(SALESFORCE_PRIVATE_KEY_FILE).is_some();
            self.require(
                SALESFORCE_PRIVATE_KEY,
                key_given,
                &format!(
                    "{why}: set SALESFORCE_PRIVATE_KEY (PEM text) or SALESFORCE_PRIVATE_KEY_FILE (path); `ipguard keygen` makes one"
                ),
            );
        }

        SalesforceSettings {
            login_url,
            audience,
            client_id,
            username,
            private_key_pem,
            org_id,
            api_version,
        }
    }

    fn load_private_key(&mut self) -> Option<SecretString> {
        let inline = self.get(SALESFORCE_PRIVATE_KEY);
        let file = self.get(SALESFORCE_PRIVATE_KEY_FILE);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    SALESFORCE_PRIVATE_KEY_FILE,
                    "set only one of SALESFORCE_PRIVATE_KEY (PEM text) and SALESFORCE_PRIVATE_KEY_FILE (path)",
                );
                None
            }
            (Some(text), None) => {
                let pem = unescape_newlines(&text);
                match validate_rsa_private_key(&pem) {
                    Ok(()) => Some(SecretString::from(pem)),
                    Err(message) => {
                        self.problem(SALESFORCE_PRIVATE_KEY, message);
                        None
                    }
                }
            }
            (None, Some(path)) => {
                let pem = match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(e) => {
                        self.problem(
                            SALESFORCE_PRIVATE_KEY_FILE,
                            format!("cannot read `{path}`: {e}"),
                        );
                        return None;
                    }
                };
                match validate_rsa_private_key(&pem) {
                    Ok(()) => Some(SecretString::from(pem)),
                    Err(message) => {
                        self.problem(SALESFORCE_PRIVATE_KEY_FILE, format!("`{path}`: {message}"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    fn load_profiles(&mut self, needs: Needs) -> Vec<String> {
        let mut profiles: Vec<String> = Vec::new();
        let mut reported = HashSet::new();
        if let Some(raw) = self.get(IPGUARD_PROFILES) {
            for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if profiles.iter().any(|p| p == name) {
                    if reported.insert(name.to_owned()) {
                        self.problem(
                            IPGUARD_PROFILES,
                            format!("`{name}` is listed more than once"),
                        );
                    }
                } else {
                    profiles.push(name.to_owned());
                }
            }
        }
        if needs.salesforce {
            self.require(
                IPGUARD_PROFILES,
                !profiles.is_empty(),
                "to call Salesforce: comma-separated profile full names as listMetadata returns them, e.g. `Admin,Custom%3A Integration`",
            );
        }
        profiles
    }

    /// Profiles forced to `exact`: each must be a managed one, or the setting would silently
    /// guard nothing.
    fn load_exact_profiles(&mut self, managed: &[String]) -> Vec<String> {
        let Some(raw) = self.get(IPGUARD_EXACT_PROFILES) else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !managed.is_empty() && !managed.iter().any(|m| m == name) {
                self.problem(
                    IPGUARD_EXACT_PROFILES,
                    format!(
                        "`{name}` is not in IPGUARD_PROFILES; list managed profile full names \
                         exactly as there (e.g. `Custom%3A Integration`)"
                    ),
                );
            } else if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
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

    fn duration(&mut self, variable: &'static str, default: Duration) -> Duration {
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

/// Heroku config vars are single-line in many UIs, so people paste PEM with literal `\n`.
fn unescape_newlines(text: &str) -> String {
    text.replace("\\r\\n", "\n").replace("\\n", "\n")
}

fn constant_url(url: &'static str) -> Url {
    Url::parse(url).expect("built-in default URL parses")
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An https URL (http on loopback, for the simulated org and tests). Messages never
/// contain the value, because some of these URLs are secrets.
fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(HTTPS_ONLY.to_owned()),
    }
}

/// A service base URL: https (or loopback http), no credentials, query or fragment;
/// with `!allow_path`, nothing after the host but an optional `/`.
fn parse_base_url(value: &str, allow_path: bool) -> Result<Url, String> {
    let url = parse_http_url(value)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query string or fragment".to_owned());
    }
    if !allow_path && url.path() != "/" {
        return Err(
            "must be scheme and host only, e.g. https://login.salesforce.com or https://MyDomain.my.salesforce.com"
                .to_owned(),
        );
    }
    Ok(url)
}

fn parse_login_url(value: &str) -> Result<Url, String> {
    parse_base_url(value, false)
}

/// Sandboxes (test.salesforce.com or a sandbox My Domain) take the test audience even
/// when the token is requested from My Domain; everything else the login audience.
fn default_audience(login_url: &Url) -> &'static str {
    let host = login_url.host_str().unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        TEST_AUDIENCE
    } else {
        LOGIN_AUDIENCE
    }
}

/// `^\d{2,3}\.0$`
fn is_api_version(value: &str) -> bool {
    value.strip_suffix(".0").is_some_and(|major| {
        (2..=3).contains(&major.len()) && major.bytes().all(|b| b.is_ascii_digit())
    })
}

fn check_token_length(value: &str) -> Result<(), String> {
    if value.chars().count() < MIN_TOKEN_CHARS {
        Err(format!(
            "must be at least {MIN_TOKEN_CHARS} characters; generate one with `openssl rand -hex 32`"
        ))
    } else {
        Ok(())
    }
}

fn parse_database_url(value: &str) -> Result<DatabaseUrl, String> {
    // Never echo the value: a Postgres URL carries its password.
    let scheme = value
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => {
            let rest = &value["sqlite:".len()..];
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                Err("the sqlite URL has no file path; use e.g. sqlite://ipguard.db".to_owned())
            } else if path.contains('?') {
                Err("sqlite URL options are not supported; give only the file path, e.g. sqlite://ipguard.db".to_owned())
            } else {
                Ok(DatabaseUrl::Sqlite {
                    path: PathBuf::from(path),
                })
            }
        }
        Some("postgres" | "postgresql") => {
            let url = Url::parse(value).map_err(|e| format!("not a valid Postgres URL ({e})"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err("the Postgres URL has no host".to_owned());
            }
            // Its options (sslmode, port, …) are the driver's to judge: judged here, a bad one
            // is in the start-up report instead of failing the store afterwards. The driver's
            // message names the option and its value, never the password.
            <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(value)
                .map_err(|e| format!("the Postgres URL's options are not usable: {e}"))?;
            Ok(DatabaseUrl::Postgres {
                url: SecretString::from(value),
            })
        }
        _ => Err(
            "unsupported database URL; use sqlite://PATH, postgres://… or postgresql://…"
                .to_owned(),
        ),
    }
}

fn parse_source_ip(entry: &str) -> Result<IpNet, String> {
    if entry.contains('/') {
        let net: IpNet = entry
            .parse()
            .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))?;
        if net.addr() != net.network() {
            return Err(format!(
                "`{entry}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        entry
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))
    }
}

/// Must parse as an RSA private key both for jsonwebtoken (which signs the assertion)
/// and for the `rsa` crate (which checks the key's structure, not just its armour).
/// Messages never include any part of the key.
fn validate_rsa_private_key(pem_text: &str) -> Result<(), String> {
    use rsa::PrivateKey as RsaPrivateKey;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    let block =
        pem::parse(pem_text).map_err(|_| format!("not a PEM document; {RSA_KEY_EXPECTED}"))?;
    let structurally_valid = match block.tag() {
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(block.contents()).is_ok(),
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(block.contents()).is_ok(),
        "ENCRYPTED PRIVATE KEY" => {
            return Err(format!(
                "the key is encrypted; decrypt it first (`openssl pkey -in key.pem -out plain.pem`); {RSA_KEY_EXPECTED}"
            ));
        }
        other => return Err(format!("found a `{other}` PEM block; {RSA_KEY_EXPECTED}")),
    };
    if !structurally_valid || jsonwebtoken::EncodingKey::from_rsa_pem(pem_text.as_bytes()).is_err()
    {
        return Err(format!(
            "the key does not parse as an RSA key; {RSA_KEY_EXPECTED}"
        ));
    }
    Ok(())
}

/// At least one CERTIFICATE or PUBLIC KEY block, each of which parses; nothing else
/// (a private key pasted here would be a leak waiting to happen).
fn validate_public_keys(pem_text: &str) -> Result<(), String> {
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::SubjectPublicKeyInfo;

    const EXPECTED: &str = "expected one or more `BEGIN CERTIFICATE` or `BEGIN PUBLIC KEY` blocks";
    let blocks =
        pem::parse_many(pem_text).map_err(|e| format!("not valid PEM ({e}); {EXPECTED}"))?;
    if blocks.is_empty() {
        return Err(format!("contains no PEM block; {EXPECTED}"));
    }
    for (index, block) in blocks.iter().enumerate() {
        let n = index + 1;
        match block.tag() {
            "CERTIFICATE" => {
                x509_parser::parse_x509_certificate(block.contents())
                    .map_err(|e| format!("certificate {n} does not parse ({e})"))?;
            }
            "PUBLIC KEY" => {
                SubjectPublicKeyInfo::from_der(block.contents())
                    .map_err(|e| format!("public key {n} does not parse ({e})"))?;
            }
            tag if tag.contains("PRIVATE KEY") => {
                return Err(format!(
                    "block {n} is a private key; only certificates or public keys belong here — remove it and treat that key as exposed"
                ));
            }
            other => return Err(format!("block {n} is `{other}`; {EXPECTED}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygen;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)], needs: Needs) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| env.get(name).cloned(), needs)
    }

    fn ok(vars: &[(&str, &str)], needs: Needs) -> Config {
        match load(vars, needs) {
            Ok(config) => config,
            Err(err) => panic!("expected a valid config, got:\n{err}"),
        }
    }

    fn err(vars: &[(&str, &str)], needs: Needs) -> ConfigError {
        match load(vars, needs) {
            Ok(config) => panic!("expected problems, got {config:?}"),
            Err(err) => err,
        }
    }

    fn variables(err: &ConfigError) -> Vec<&'static str> {
        err.problems.iter().map(|p| p.variable).collect()
    }

    fn message_for<'e>(err: &'e ConfigError, variable: &str) -> &'e str {
        err.problems
            .iter()
            .find(|p| p.variable == variable)
            .map(|p| p.message.as_str())
            .unwrap_or_else(|| panic!("no problem for {variable} in:\n{err}"))
    }

    fn key_pem() -> &'static str {
        keygen::test_material().private_key_pem.expose_secret()
    }

    fn cert_pem() -> &'static str {
        &keygen::test_material().certificate_pem
    }

    /// A valid set for `Needs::salesforce()` with the key inline.
    fn salesforce_vars() -> Vec<(&'static str, &'static str)> {
        vec![
            (SALESFORCE_CLIENT_ID, "3MVG9consumerkey"),
            (SALESFORCE_USERNAME, "integration@example.com"),
            (SALESFORCE_PRIVATE_KEY, key_pem()),
            (IPGUARD_PROFILES, "Admin, Custom%3A Integration"),
            (IPGUARD_SOURCE_IPS, "52.1.2.3"),
        ]
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = ok(&[], Needs::default());
        assert_eq!(config.port, 8080);
        assert!(
            matches!(&config.database, DatabaseUrl::Sqlite { path } if path == &PathBuf::from("ipguard.db"))
        );
        assert_eq!(
            config.salesforce.login_url.as_str(),
            "https://login.salesforce.com/"
        );
        assert_eq!(config.salesforce.audience, "https://login.salesforce.com");
        assert_eq!(config.salesforce.api_version, "66.0");
        assert!(config.salesforce.client_id.is_none());
        assert!(config.salesforce.username.is_none());
        assert!(config.salesforce.private_key_pem.is_none());
        assert!(config.salesforce.org_id.is_none());
        assert!(config.profiles.is_empty());
        assert!(config.source_ips.is_empty());
        assert!(config.heroku.is_none());
        assert_eq!(config.policy, Policy::Merge);
        assert_eq!(config.mode, Mode::Enforce);
        assert_eq!(config.resync_interval, Duration::from_secs(600));
        assert_eq!(config.debounce, Duration::from_secs(2));
        assert_eq!(config.deploy_timeout, Duration::from_secs(1800));
        assert!(config.events_jwt.is_none());
        assert!(config.outbound_message_token.is_none());
        assert!(config.admin_token.is_none());
        assert!(config.alert_webhook_url.is_none());
        assert_eq!(config.rust_log, "info");
    }

    #[test]
    fn empty_and_blank_values_count_as_unset() {
        let config = ok(
            &[
                (PORT, ""),
                (DATABASE_URL, "  "),
                (IPGUARD_POLICY, ""),
                (HEROKU_SPACE, ""),
                (HEROKU_API_TOKEN, ""),
                (RUST_LOG, ""),
            ],
            Needs::default(),
        );
        assert_eq!(config.port, 8080);
        assert!(config.heroku.is_none());
        assert_eq!(config.rust_log, "info");
    }

    #[test]
    fn values_are_parsed_into_types() {
        let config = ok(
            &[
                (PORT, " 5000 "),
                (
                    DATABASE_URL,
                    "postgres://user:pw@db.example.com:5432/ipguard",
                ),
                (SALESFORCE_ORG_ID, "00D000000000062"),
                (SALESFORCE_API_VERSION, "64.0"),
                (IPGUARD_POLICY, "exact"),
                (IPGUARD_MODE, "dry-run"),
                (IPGUARD_RESYNC_INTERVAL, "1h 30m"),
                (IPGUARD_DEBOUNCE, "500ms"),
                (IPGUARD_DEPLOY_TIMEOUT, "45m"),
                (OUTBOUND_MESSAGE_TOKEN, "abcdefghij_KLMN-0123"),
                (IPGUARD_ADMIN_TOKEN, "any characters! 16+"),
                (
                    IPGUARD_ALERT_WEBHOOK_URL,
                    "https://hooks.slack.com/services/T0/B0/x",
                ),
                (RUST_LOG, "ipguard=debug,info"),
            ],
            Needs::default(),
        );
        assert_eq!(config.port, 5000);
        assert!(matches!(
            &config.database,
            DatabaseUrl::Postgres { url } if url.expose_secret() == "postgres://user:pw@db.example.com:5432/ipguard"
        ));
        assert_eq!(
            config.salesforce.org_id.as_ref().map(OrgId::as_str),
            Some("00D000000000062EAA")
        );
        assert_eq!(config.salesforce.api_version, "64.0");
        assert_eq!(config.policy, Policy::Exact);
        assert_eq!(config.mode, Mode::DryRun);
        assert_eq!(config.resync_interval, Duration::from_secs(5400));
        assert_eq!(config.debounce, Duration::from_millis(500));
        assert_eq!(config.deploy_timeout, Duration::from_secs(2700));
        assert_eq!(
            config
                .outbound_message_token
                .as_ref()
                .map(|s| s.expose_secret()),
            Some("abcdefghij_KLMN-0123")
        );
        assert!(config.admin_token.is_some());
        assert!(config.alert_webhook_url.is_some());
        assert_eq!(config.rust_log, "ipguard=debug,info");
    }

    #[test]
    fn database_urls() {
        for (value, expected) in [
            ("sqlite://data/ipguard.db", "data/ipguard.db"),
            ("sqlite:ipguard.db", "ipguard.db"),
            ("sqlite:///var/lib/ipguard.db", "/var/lib/ipguard.db"),
        ] {
            let config = ok(&[(DATABASE_URL, value)], Needs::default());
            assert!(
                matches!(&config.database, DatabaseUrl::Sqlite { path } if path == &PathBuf::from(expected)),
                "{value} → {:?}",
                config.database
            );
        }
        let config = ok(
            &[(DATABASE_URL, "postgresql://u:p@localhost/db")],
            Needs::default(),
        );
        assert!(matches!(config.database, DatabaseUrl::Postgres { .. }));

        let e = err(&[(DATABASE_URL, "mysql://u:p@host/db")], Needs::default());
        assert_eq!(variables(&e), [DATABASE_URL]);
        let message = message_for(&e, DATABASE_URL);
        assert!(message.contains("sqlite://") && message.contains("postgres://"));
    }

    #[test]
    fn a_bad_postgres_option_is_in_the_start_up_report_without_the_password() {
        let e = err(
            &[(
                DATABASE_URL,
                "postgres://ipguard:hunter2-db@db.example.com/ipguard?sslmode=requier",
            )],
            Needs::default(),
        );
        assert_eq!(variables(&e), [DATABASE_URL]);
        let message = message_for(&e, DATABASE_URL);
        assert!(message.contains("requier"), "{message}");
        assert!(message.contains("ssl"), "{message}");
        assert!(!e.to_string().contains("hunter2-db"), "{e}");
    }

    #[test]
    fn each_invalid_value_is_reported_on_its_variable() {
        let cases: &[(&str, &str)] = &[
            (PORT, "http"),
            (PORT, "65536"),
            (DATABASE_URL, "ipguard.db"),
            (DATABASE_URL, "sqlite://"),
            (DATABASE_URL, "sqlite://x.db?mode=rwc"),
            (DATABASE_URL, "postgres://"),
            (SALESFORCE_LOGIN_URL, "login.salesforce.com"),
            (SALESFORCE_LOGIN_URL, "http://login.salesforce.com"),
            (
                SALESFORCE_LOGIN_URL,
                "https://login.salesforce.com/services/oauth2/token",
            ),
            (SALESFORCE_LOGIN_URL, "https://login.salesforce.com/?x=1"),
            (SALESFORCE_LOGIN_URL, "https://user:pw@login.salesforce.com"),
            (SALESFORCE_AUDIENCE, "login.salesforce.com"),
            (SALESFORCE_USERNAME, "Integration User"),
            (SALESFORCE_PRIVATE_KEY, "not a key"),
            (SALESFORCE_PRIVATE_KEY_FILE, "/nonexistent/ipguard.key"),
            (SALESFORCE_ORG_ID, "005000000000062"),
            (SALESFORCE_ORG_ID, "00D000000000062EAB"),
            (SALESFORCE_API_VERSION, "66"),
            (SALESFORCE_API_VERSION, "v66.0"),
            (SALESFORCE_API_VERSION, "66.1"),
            (SALESFORCE_API_VERSION, "1234.0"),
            (IPGUARD_PROFILES, "Admin,Admin"),
            (IPGUARD_SOURCE_IPS, "not-an-ip"),
            (IPGUARD_SOURCE_IPS, "10.0.0.1/24"),
            (IPGUARD_SOURCE_IPS, "10.0.0.0/33"),
            (HEROKU_API_URL, "http://api.heroku.com"),
            (IPGUARD_POLICY, "strict"),
            (IPGUARD_MODE, "dryrun"),
            (IPGUARD_RESYNC_INTERVAL, "0s"),
            (IPGUARD_RESYNC_INTERVAL, "soon"),
            (IPGUARD_DEBOUNCE, "2"),
            (IPGUARD_DEPLOY_TIMEOUT, "0m"),
            (OUTBOUND_MESSAGE_TOKEN, "short"),
            (OUTBOUND_MESSAGE_TOKEN, "has/a/slash/in/it/too"),
            (IPGUARD_ADMIN_TOKEN, "short"),
            (
                IPGUARD_ALERT_WEBHOOK_URL,
                "http://hooks.slack.com/services/x",
            ),
            (IPGUARD_ALERT_WEBHOOK_URL, "not a url"),
            (RUST_LOG, "ipguard=loudest"),
        ];
        for &(variable, value) in cases {
            let e = err(&[(variable, value)], Needs::default());
            assert!(
                !e.problems.is_empty() && variables(&e).iter().all(|v| *v == variable),
                "{variable}={value:?} gave:\n{e}"
            );
        }
    }

    #[test]
    fn several_problems_are_reported_together_one_per_line() {
        let e = err(
            &[
                (PORT, "eighty"),
                (IPGUARD_POLICY, "strict"),
                (IPGUARD_MODE, "yolo"),
                (IPGUARD_SOURCE_IPS, "1.2.3.4, bogus, 10.0.0.1/24"),
            ],
            Needs::default(),
        );
        assert_eq!(
            variables(&e),
            [
                PORT,
                IPGUARD_SOURCE_IPS,
                IPGUARD_SOURCE_IPS,
                IPGUARD_POLICY,
                IPGUARD_MODE
            ]
        );
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("PORT: `eighty` is not a port number"));
        assert!(lines[1].starts_with("IPGUARD_SOURCE_IPS: `bogus`"));
        assert_eq!(
            lines[2],
            "IPGUARD_SOURCE_IPS: `10.0.0.1/24` has host bits set; did you mean `10.0.0.0/24`?"
        );
        assert!(lines[3].starts_with("IPGUARD_POLICY: `strict` is not a policy"));
        assert!(lines[4].starts_with("IPGUARD_MODE: `yolo` is not a mode"));
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let key_body_line = key_pem().lines().nth(1).expect("key body");
        let mut vars = salesforce_vars();
        vars.extend([
            (
                DATABASE_URL,
                "postgres://ipguard:pg-password-xyz@db.example.com/ipguard",
            ),
            (HEROKU_SPACE, "my-space"),
            (HEROKU_API_TOKEN, "heroku-token-secret-123"),
            (OUTBOUND_MESSAGE_TOKEN, "outbound_token_secret_456"),
            (IPGUARD_ADMIN_TOKEN, "admin-token-secret-789"),
            (
                IPGUARD_ALERT_WEBHOOK_URL,
                "https://hooks.slack.com/services/T00/B00/webhooksecret",
            ),
        ]);
        let config = ok(&vars, Needs::serve());
        let debug = format!("{config:?}");
        for secret in [
            key_body_line,
            "pg-password-xyz",
            "heroku-token-secret-123",
            "outbound_token_secret_456",
            "admin-token-secret-789",
            "webhooksecret",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
        // The non-secret settings are still there to help debugging.
        assert!(debug.contains("integration@example.com"));
        assert!(debug.contains("my-space"));
    }

    #[test]
    fn bad_secrets_are_not_echoed_in_messages() {
        let bad_key =
            "-----BEGIN PRIVATE KEY-----\nU0VDUkVUR0FSQkFHRQ==\n-----END PRIVATE KEY-----\n";
        let e = err(
            &[
                (SALESFORCE_PRIVATE_KEY, bad_key),
                (DATABASE_URL, "mysql://root:hunter2-db@db/ipguard"),
                (OUTBOUND_MESSAGE_TOKEN, "sh0rt-s3cret"),
                (IPGUARD_ADMIN_TOKEN, "tiny-s3cret"),
                (
                    IPGUARD_ALERT_WEBHOOK_URL,
                    "http://hooks.example.com/T0/hooks3cret",
                ),
            ],
            Needs::default(),
        );
        assert_eq!(
            variables(&e),
            [
                DATABASE_URL,
                SALESFORCE_PRIVATE_KEY,
                OUTBOUND_MESSAGE_TOKEN,
                IPGUARD_ADMIN_TOKEN,
                IPGUARD_ALERT_WEBHOOK_URL
            ]
        );
        let text = e.to_string();
        for secret in [
            "U0VDUkVUR0FSQkFHRQ",
            "hunter2-db",
            "sh0rt-s3cret",
            "tiny-s3cret",
            "hooks3cret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
        }
        assert!(
            message_for(&e, SALESFORCE_PRIVATE_KEY).contains(
                "expected an RSA private key in PEM (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1)"
            )
        );
    }

    #[test]
    fn private_key_with_escaped_newlines_is_accepted() {
        let escaped = key_pem().replace('\n', "\\n");
        assert!(!escaped.contains('\n'));
        let mut vars = salesforce_vars();
        vars.retain(|(k, _)| *k != SALESFORCE_PRIVATE_KEY);
        vars.push((SALESFORCE_PRIVATE_KEY, &escaped));
        let config = ok(&vars, Needs::salesforce());
        let stored = config.salesforce.private_key_pem.expect("key");
        assert_eq!(stored.expose_secret(), key_pem());
    }

    #[test]
    fn private_key_from_file_and_pkcs1_form() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;

        let key = rsa::PrivateKey::from_pkcs8_pem(key_pem()).expect("test key");
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("pkcs1");
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pkcs1.as_bytes()).expect("write");
        let path = path.to_str().expect("utf8 path");

        let config = ok(&[(SALESFORCE_PRIVATE_KEY_FILE, path)], Needs::default());
        assert_eq!(
            config
                .salesforce
                .private_key_pem
                .as_ref()
                .map(|k| k.expose_secret()),
            Some(pkcs1.as_str())
        );

        let e = err(
            &[
                (SALESFORCE_PRIVATE_KEY_FILE, path),
                (SALESFORCE_PRIVATE_KEY, key_pem()),
            ],
            Needs::default(),
        );
        assert_eq!(variables(&e), [SALESFORCE_PRIVATE_KEY_FILE]);
        assert!(message_for(&e, SALESFORCE_PRIVATE_KEY_FILE).contains("only one"));
    }

    #[test]
    fn non_rsa_or_non_key_pem_is_refused_with_the_expected_forms() {
        for (pem, hint) in [
            (cert_pem().to_owned(), "found a `CERTIFICATE` PEM block"),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                    .to_owned(),
                "encrypted",
            ),
            // Well-formed armour around DER that is not an RSA key.
            (
                "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n".to_owned(),
                "does not parse as an RSA key",
            ),
        ] {
            let e = err(&[(SALESFORCE_PRIVATE_KEY, &pem)], Needs::default());
            let message = message_for(&e, SALESFORCE_PRIVATE_KEY);
            assert!(message.contains(hint), "{message}");
            assert!(message.contains(RSA_KEY_EXPECTED), "{message}");
        }
    }

    #[test]
    fn login_url_forms_and_audience_defaults() {
        let cases = [
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com/",
                LOGIN_AUDIENCE,
            ),
            (
                "https://test.salesforce.com/",
                "https://test.salesforce.com/",
                TEST_AUDIENCE,
            ),
            (
                "https://acme--uat.sandbox.my.salesforce.com",
                "https://acme--uat.sandbox.my.salesforce.com/",
                TEST_AUDIENCE,
            ),
            (
                "https://acme.my.salesforce.com",
                "https://acme.my.salesforce.com/",
                LOGIN_AUDIENCE,
            ),
            (
                "http://127.0.0.1:9999",
                "http://127.0.0.1:9999/",
                LOGIN_AUDIENCE,
            ),
            (
                "http://localhost:9999/",
                "http://localhost:9999/",
                LOGIN_AUDIENCE,
            ),
        ];
        for (value, url, audience) in cases {
            let config = ok(&[(SALESFORCE_LOGIN_URL, value)], Needs::default());
            assert_eq!(config.salesforce.login_url.as_str(), url, "{value}");
            assert_eq!(config.salesforce.audience, audience, "{value}");
        }
        let config = ok(
            &[(SALESFORCE_LOGIN_URL, "https://acme.my.salesforce.com")],
            Needs::default(),
        );
        assert_eq!(
            config
                .salesforce
                .login_url
                .join("/services/oauth2/token")
                .expect("join")
                .as_str(),
            "https://acme.my.salesforce.com/services/oauth2/token"
        );
        // An explicit audience wins over the default.
        let config = ok(
            &[
                (
                    SALESFORCE_LOGIN_URL,
                    "https://acme--uat.sandbox.my.salesforce.com",
                ),
                (SALESFORCE_AUDIENCE, "https://login.salesforce.com"),
            ],
            Needs::default(),
        );
        assert_eq!(config.salesforce.audience, LOGIN_AUDIENCE);
    }

    #[test]
    fn profiles_are_verbatim_trimmed_and_deduplicated() {
        let config = ok(
            &[(IPGUARD_PROFILES, " Admin ,, Custom%3A Integration ,")],
            Needs::default(),
        );
        assert_eq!(config.profiles, ["Admin", "Custom%3A Integration"]);

        let e = err(
            &[(IPGUARD_PROFILES, "Admin,Custom%3A Sales,Admin,Admin")],
            Needs::default(),
        );
        assert_eq!(variables(&e), [IPGUARD_PROFILES], "reported once:\n{e}");
        assert!(message_for(&e, IPGUARD_PROFILES).contains("`Admin`"));
    }

    #[test]
    fn source_ips_become_networks_and_bad_entries_are_named() {
        let config = ok(
            &[(
                IPGUARD_SOURCE_IPS,
                "52.1.2.3, 10.0.0.0/28,2001:db8::1,2001:db8::/64",
            )],
            Needs::sources(),
        );
        let nets: Vec<String> = config.source_ips.iter().map(ToString::to_string).collect();
        assert_eq!(
            nets,
            [
                "52.1.2.3/32",
                "10.0.0.0/28",
                "2001:db8::1/128",
                "2001:db8::/64"
            ]
        );

        let e = err(
            &[(IPGUARD_SOURCE_IPS, "1.2.3, 52.1.2.3, ::g")],
            Needs::default(),
        );
        assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS, IPGUARD_SOURCE_IPS]);
        assert!(e.problems[0].message.contains("`1.2.3`"));
        assert!(e.problems[1].message.contains("`::g`"));
        let e = err(&[(IPGUARD_SOURCE_IPS, "2001:db8::1/64")], Needs::default());
        assert!(message_for(&e, IPGUARD_SOURCE_IPS).contains("`2001:db8::/64`"));
    }

    #[test]
    fn heroku_settings_come_as_a_pair() {
        let config = ok(
            &[(HEROKU_SPACE, "acme-space"), (HEROKU_API_TOKEN, "hrku-abc")],
            Needs::sources(),
        );
        let heroku = config.heroku.expect("heroku");
        assert_eq!(heroku.space, "acme-space");
        assert_eq!(heroku.api_token.expose_secret(), "hrku-abc");
        assert_eq!(heroku.api_url.as_str(), "https://api.heroku.com/");

        let config = ok(
            &[
                (HEROKU_SPACE, "acme-space"),
                (HEROKU_API_TOKEN, "hrku-abc"),
                (HEROKU_API_URL, "http://127.0.0.1:4567"),
            ],
            Needs::default(),
        );
        assert_eq!(
            config.heroku.expect("heroku").api_url.as_str(),
            "http://127.0.0.1:4567/"
        );

        let e = err(&[(HEROKU_SPACE, "acme-space")], Needs::sources());
        // The missing partner is the problem; "no source" would be noise on top.
        assert_eq!(variables(&e), [HEROKU_API_TOKEN]);
        let e = err(&[(HEROKU_API_TOKEN, "hrku-abc")], Needs::sources());
        assert_eq!(variables(&e), [HEROKU_SPACE]);
        let e = err(
            &[(HEROKU_SPACE, "../apps"), (HEROKU_API_TOKEN, "hrku-abc")],
            Needs::default(),
        );
        assert_eq!(variables(&e), [HEROKU_SPACE]);
    }

    #[test]
    fn needs_decide_what_is_required() {
        assert_eq!(
            Needs::default(),
            Needs {
                sources: false,
                salesforce: false,
                events: false
            }
        );
        assert_eq!(
            Needs::sources(),
            Needs {
                sources: true,
                salesforce: false,
                events: false
            }
        );
        assert_eq!(
            Needs::salesforce(),
            Needs {
                sources: true,
                salesforce: true,
                events: false
            }
        );
        assert_eq!(Needs::serve(), Needs::salesforce());

        ok(&[], Needs::default());

        let e = err(&[], Needs::sources());
        assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS]);
        let message = message_for(&e, IPGUARD_SOURCE_IPS);
        assert!(message.contains("IPGUARD_SOURCE_IPS") && message.contains("HEROKU_SPACE"));
        // A list of only separators names no source either.
        let e = err(&[(IPGUARD_SOURCE_IPS, " , ")], Needs::sources());
        assert_eq!(variables(&e), [IPGUARD_SOURCE_IPS]);
        ok(&[(IPGUARD_SOURCE_IPS, "52.1.2.3")], Needs::sources());

        let e = err(&[], Needs::salesforce());
        assert_eq!(
            variables(&e),
            [
                SALESFORCE_CLIENT_ID,
                SALESFORCE_USERNAME,
                SALESFORCE_PRIVATE_KEY,
                IPGUARD_PROFILES,
                IPGUARD_SOURCE_IPS
            ]
        );
        assert!(message_for(&e, SALESFORCE_PRIVATE_KEY).contains("SALESFORCE_PRIVATE_KEY_FILE"));
        let config = ok(&salesforce_vars(), Needs::salesforce());
        assert_eq!(
            config.salesforce.client_id.as_deref(),
            Some("3MVG9consumerkey")
        );
        assert_eq!(
            config.salesforce.username.as_deref(),
            Some("integration@example.com")
        );

        let e = err(
            &[],
            Needs {
                events: true,
                ..Needs::default()
            },
        );
        assert_eq!(
            variables(&e),
            [EVENTS_JWT_CERTS, EVENTS_JWT_ISSUER, EVENTS_JWT_AUDIENCE]
        );
        assert!(message_for(&e, EVENTS_JWT_ISSUER).contains("/salesforce/events"));
    }

    #[test]
    fn invalid_username_is_not_also_reported_missing() {
        let mut vars = salesforce_vars();
        vars.retain(|(k, _)| *k != SALESFORCE_USERNAME);
        vars.push((SALESFORCE_USERNAME, "Integration User"));
        let e = err(&vars, Needs::salesforce());
        assert_eq!(variables(&e), [SALESFORCE_USERNAME]);
        assert!(message_for(&e, SALESFORCE_USERNAME).contains("email"));
    }

    #[test]
    fn events_jwt_settings() {
        let two_certs = format!("{}\n{}", cert_pem(), cert_pem());
        let public_key = {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            rsa::PrivateKey::from_pkcs8_pem(key_pem())
                .expect("key")
                .to_public_key()
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .expect("public pem")
        };
        let escaped = cert_pem().replace('\n', "\\n");
        for certs in [
            cert_pem(),
            two_certs.as_str(),
            public_key.as_str(),
            escaped.as_str(),
        ] {
            let config = ok(
                &[
                    (EVENTS_JWT_CERTS, certs),
                    (EVENTS_JWT_ISSUER, "3MVG9issuer"),
                    (EVENTS_JWT_AUDIENCE, "https://ipguard.example.com"),
                ],
                Needs {
                    events: true,
                    ..Needs::default()
                },
            );
            let events = config.events_jwt.expect("events");
            assert!(!events.keys_pem.contains("\\n"));
            assert_eq!(events.issuer, "3MVG9issuer");
            assert_eq!(events.audience, "https://ipguard.example.com");
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("certs.pem");
        std::fs::write(&path, cert_pem()).expect("write");
        let path = path.to_str().expect("utf8");
        let config = ok(
            &[
                (EVENTS_JWT_CERTS_FILE, path),
                (EVENTS_JWT_ISSUER, "iss"),
                (EVENTS_JWT_AUDIENCE, "aud"),
            ],
            Needs::default(),
        );
        assert_eq!(config.events_jwt.expect("events").keys_pem, cert_pem());

        let e = err(
            &[
                (EVENTS_JWT_CERTS_FILE, path),
                (EVENTS_JWT_CERTS, cert_pem()),
                (EVENTS_JWT_ISSUER, "iss"),
                (EVENTS_JWT_AUDIENCE, "aud"),
            ],
            Needs::default(),
        );
        assert_eq!(variables(&e), [EVENTS_JWT_CERTS_FILE]);

        let e = err(
            &[
                (EVENTS_JWT_CERTS_FILE, "/nonexistent/certs.pem"),
                (EVENTS_JWT_ISSUER, "iss"),
                (EVENTS_JWT_AUDIENCE, "aud"),
            ],
            Needs::default(),
        );
        assert_eq!(variables(&e), [EVENTS_JWT_CERTS_FILE]);
        assert!(
            message_for(&e, EVENTS_JWT_CERTS_FILE).contains("cannot read `/nonexistent/certs.pem`")
        );
    }

    #[test]
    fn events_jwt_rejects_bad_or_private_material() {
        let corrupt_cert = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
        let with_private = format!("{}{}", cert_pem(), key_pem());
        for (certs, hint) in [
            ("no pem here", "no PEM block"),
            (corrupt_cert, "certificate 1 does not parse"),
            (key_pem(), "private key"),
            (with_private.as_str(), "block 2 is a private key"),
        ] {
            let e = err(
                &[
                    (EVENTS_JWT_CERTS, certs),
                    (EVENTS_JWT_ISSUER, "iss"),
                    (EVENTS_JWT_AUDIENCE, "aud"),
                ],
                Needs::default(),
            );
            assert_eq!(variables(&e), [EVENTS_JWT_CERTS], "{e}");
            let message = message_for(&e, EVENTS_JWT_CERTS);
            assert!(message.contains(hint), "{message}");
        }
    }

    #[test]
    fn events_jwt_settings_come_as_a_set() {
        let e = err(&[(EVENTS_JWT_ISSUER, "iss")], Needs::default());
        assert_eq!(variables(&e), [EVENTS_JWT_CERTS, EVENTS_JWT_AUDIENCE]);
        assert!(message_for(&e, EVENTS_JWT_AUDIENCE).contains("because EVENTS_JWT_ISSUER is set"));

        let e = err(&[(EVENTS_JWT_CERTS, cert_pem())], Needs::default());
        assert_eq!(variables(&e), [EVENTS_JWT_ISSUER, EVENTS_JWT_AUDIENCE]);
    }

    #[test]
    fn exact_profiles_and_keep_within() {
        let mut vars = salesforce_vars();
        vars.push((IPGUARD_EXACT_PROFILES, "Custom%3A Integration"));
        vars.push((IPGUARD_KEEP_WITHIN, "10.0.0.0/8, 198.51.100.7"));
        let config = ok(&vars, Needs::salesforce());
        assert_eq!(config.exact_profiles, ["Custom%3A Integration"]);
        let keep: Vec<String> = config
            .keep_within
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(keep, ["10.0.0.0/8", "198.51.100.7/32"]);
        assert_eq!(
            ok(&salesforce_vars(), Needs::salesforce()).keep_within,
            None
        );

        // a profile that is not managed, and a bad CIDR: both reported, on their variables
        let mut vars = salesforce_vars();
        vars.push((IPGUARD_EXACT_PROFILES, "Custom: Integration"));
        vars.push((IPGUARD_KEEP_WITHIN, "10.0.0.0/33"));
        let err = err(&vars, Needs::salesforce());
        assert!(message_for(&err, IPGUARD_EXACT_PROFILES).contains("not in IPGUARD_PROFILES"));
        assert!(!message_for(&err, IPGUARD_KEEP_WITHIN).is_empty());
    }

    #[test]
    fn policy_and_mode_names() {
        assert_eq!(Policy::Merge.as_str(), "merge");
        assert_eq!(Policy::Exact.to_string(), "exact");
        assert_eq!(Mode::Enforce.as_str(), "enforce");
        assert_eq!(Mode::DryRun.as_str(), "dry-run");
        assert_eq!(
            serde_json::to_string(&Policy::Exact).expect("json"),
            "\"exact\""
        );
        assert_eq!(
            serde_json::to_string(&Mode::DryRun).expect("json"),
            "\"dry-run\""
        );
        assert_eq!(
            serde_json::from_str::<Mode>("\"dry-run\"").expect("json"),
            Mode::DryRun
        );
        assert_eq!(
            serde_json::from_str::<Policy>("\"merge\"").expect("json"),
            Policy::Merge
        );
        // The parser accepts exactly what as_str produces.
        for mode in [Mode::Enforce, Mode::DryRun] {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        }
        for policy in [Policy::Merge, Policy::Exact] {
            assert_eq!(policy.as_str().parse::<Policy>(), Ok(policy));
        }
        // Names are exact: no case folding, no near misses.
        let e = "Merge".parse::<Policy>().expect_err("case matters");
        assert_eq!(e.value, "Merge");
        assert!("dry_run".parse::<Mode>().is_err());
    }

    #[test]
    fn api_version_shape() {
        for good in ["66.0", "10.0", "100.0"] {
            assert!(is_api_version(good), "{good}");
        }
        for bad in [
            "6.0", "1000.0", "66", "66.00", "66.1", "6a.0", ".0", "", "٦٦.0",
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }
}
