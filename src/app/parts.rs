//! The pieces a run is made of, built from the configuration in one place for every command
//! that runs one (`serve`, `apply`, `plan`, `check`): HTTP client, Metadata API client, IP
//! sources, run settings, managed profiles and the org's key.

use std::time::Duration;

use crate::config::{Config, Mode, OrgSettings};
use crate::heroku::HerokuClient;
use crate::reconcile::attribution::{self, Matchers};
use crate::reconcile::doors::SideDoors;
use crate::reconcile::guarded::ProfileSelection;
use crate::reconcile::run::{AttributionSettings, Run, RunSettings, Sources};
use crate::salesforce::auth::{AuthError, JwtBearer};
use crate::salesforce::client::{MetadataClient, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(
        "SALESFORCE_CLIENT_ID, SALESFORCE_USERNAME and SALESFORCE_PRIVATE_KEY are required for Salesforce calls"
    )]
    NoCredentials,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Everything one run reads and calls, for one guarded org.
pub struct Parts {
    pub http: reqwest::Client,
    pub client: MetadataClient,
    pub sources: Sources,
    pub settings: RunSettings,
    pub profiles: ProfileSelection,
    pub doors: SideDoors,
    pub org_key: String,
}

impl Parts {
    /// The managed profiles narrowed to `only` (empty: all of them), with `retry` for
    /// Salesforce calls. Fails on the first missing credential or bad profile name; the
    /// configuration report has already listed every problem at start-up.
    pub fn build(
        config: &Config,
        org: &OrgSettings,
        only: &[String],
        retry: RetryPolicy,
    ) -> Result<Self, PartsError> {
        Self::build_on(http_client()?, config, org, only, retry)
    }

    /// [`Parts::build`] over an HTTP client the caller already has (`serve` builds one for
    /// every org: one connection pool and TLS setup, not one per org).
    pub fn build_on(
        http: reqwest::Client,
        config: &Config,
        org: &OrgSettings,
        only: &[String],
        retry: RetryPolicy,
    ) -> Result<Self, PartsError> {
        Ok(Self {
            client: metadata_client(org, &http, retry)?,
            sources: sources(config, org, &http),
            settings: run_settings(config, org),
            profiles: org.profiles.narrowed(only),
            doors: org.side_doors.clone(),
            org_key: org_key(org),
            http,
        })
    }

    /// A run over these parts.
    pub fn run(&self) -> Run<'_> {
        Run {
            client: &self.client,
            sources: &self.sources,
            settings: &self.settings,
            profiles: &self.profiles,
            doors: &self.doors,
        }
    }
}

/// Installs rustls' ring provider once per process (reqwest is built without a default one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http_client() -> Result<reqwest::Client, PartsError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("ipguard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| PartsError::Http(e.to_string()))
}

/// Where an org's desired IPs come from: the shared static ones and its own, and, with
/// `HEROKU_SPACE`, the space's NAT.
pub fn sources(config: &Config, org: &OrgSettings, http: &reqwest::Client) -> Sources {
    Sources {
        static_ips: config
            .source_ips
            .iter()
            .chain(&org.source_ips)
            .copied()
            .collect(),
        heroku: config.heroku.as_ref().map(|h| {
            HerokuClient::new(
                http.clone(),
                h.api_url.clone(),
                &h.space,
                h.api_token.clone(),
            )
        }),
    }
}

fn metadata_client(
    org: &OrgSettings,
    http: &reqwest::Client,
    retry: RetryPolicy,
) -> Result<MetadataClient, PartsError> {
    let sf = &org.salesforce;
    let credentials = sf.credentials.as_ref().ok_or(PartsError::NoCredentials)?;
    let auth = JwtBearer::new(
        http.clone(),
        &sf.login_url,
        &sf.audience,
        &credentials.client_id,
        &credentials.username,
        &credentials.key,
    )?;
    Ok(MetadataClient::new(
        http.clone(),
        auth,
        &sf.api_version,
        retry,
    ))
}

fn run_settings(config: &Config, org: &OrgSettings) -> RunSettings {
    let mut settings = RunSettings::new(
        org.policy_rules(),
        org.mode == Mode::DryRun,
        config.deploy_timeout,
    );
    settings.integration_username = org.salesforce.username().map(str::to_owned);
    settings.attribution = org
        .salesforce
        .username()
        .map(|username| AttributionSettings {
            integration_username: username.to_owned(),
            matchers: Matchers::default(),
            window: attribution::DEFAULT_WINDOW,
        });
    settings
}

/// The key runs, hints, leases and status were filed under before keys named the org. A
/// store shared by two deployments without `SALESFORCE_ORG_ID` mixed both orgs under it.
pub const LEGACY_ORG_KEY: &str = "default";

/// The key an org's runs, hints, lease and status are filed under, so deployments that share
/// one database never share a lease: the org id when configured; otherwise the integration
/// username within its instance type — Salesforce keeps usernames unique across every
/// production org, and separately across every sandbox, case-insensitively (docs/contract.md
/// § Org keys) — and the audience (`login`/`test`) says which. Without either (no Salesforce
/// settings at all) nothing is guarded and the legacy key stays.
pub fn org_key(org: &OrgSettings) -> String {
    let sf = &org.salesforce;
    if let Some(org_id) = &sf.org_id {
        return org_id.as_str().to_owned();
    }
    match sf.username() {
        Some(username) => {
            let instance = sf
                .audience
                .trim_start_matches("https://")
                .trim_end_matches('/');
            format!("user:{instance}/{}", username.to_lowercase())
        }
        None => LEGACY_ORG_KEY.to_owned(),
    }
}

/// The legacy key whose history becomes this org's when it takes the lease: only a username
/// key, because the org id was unset back then too, so nothing else can have been filed there.
pub fn adopts_legacy_key(org_key: &str) -> Option<&'static str> {
    org_key.starts_with("user:").then_some(LEGACY_ORG_KEY)
}

/// A lease holder name that tells an operator which process holds an org: the command, the
/// dyno (Heroku sets DYNO: `web.1`, `run.1234`) or pid, and a unique suffix.
pub fn lease_holder(command: &str) -> String {
    let place = std::env::var("DYNO").unwrap_or_else(|_| format!("pid{}", std::process::id()));
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{command}@{place}-{}", &unique[..8])
}
