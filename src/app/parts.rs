//! Builds the clients a command needs from the configuration.

use std::time::Duration;

use crate::config::{Config, Mode};
use crate::heroku::HerokuClient;
use crate::reconcile::attribution::{self, Matchers};
use crate::reconcile::run::{AttributionSettings, RunSettings, Sources};
use crate::salesforce::auth::{AuthError, JwtBearer};
use crate::salesforce::client::{MetadataClient, RetryPolicy};
use crate::salesforce::profile::{ProfileName, ProfileNameError};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("{0} is required for Salesforce calls")]
    Missing(&'static str),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("IPGUARD_PROFILES: {0}")]
    Profile(#[from] ProfileNameError),
}

/// Installs rustls' ring provider once per process (reqwest is built without a default one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http_client() -> Result<reqwest::Client, WiringError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("ipguard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| WiringError::Http(e.to_string()))
}

pub fn sources(config: &Config, http: &reqwest::Client) -> Sources {
    Sources {
        static_ips: config.source_ips.clone(),
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

pub fn metadata_client(
    config: &Config,
    http: &reqwest::Client,
    retry: RetryPolicy,
) -> Result<MetadataClient, WiringError> {
    let sf = &config.salesforce;
    let client_id = sf
        .client_id
        .as_deref()
        .ok_or(WiringError::Missing("SALESFORCE_CLIENT_ID"))?;
    let username = sf
        .username
        .as_deref()
        .ok_or(WiringError::Missing("SALESFORCE_USERNAME"))?;
    let key = sf
        .private_key_pem
        .as_ref()
        .ok_or(WiringError::Missing("SALESFORCE_PRIVATE_KEY"))?;
    let auth = JwtBearer::new(
        http.clone(),
        &sf.login_url,
        &sf.audience,
        client_id,
        username,
        key,
    )?;
    Ok(MetadataClient::new(
        http.clone(),
        auth,
        &sf.api_version,
        retry,
    ))
}

/// The managed profiles, optionally narrowed to `only` (which must be managed ones).
pub fn profile_names(config: &Config, only: &[String]) -> Result<Vec<ProfileName>, WiringError> {
    let names = config
        .profiles
        .iter()
        .filter(|p| only.is_empty() || only.contains(p))
        .map(|p| ProfileName::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

pub fn run_settings(config: &Config, force_check_only: bool) -> RunSettings {
    let mut settings = RunSettings::new(
        config.policy_rules(),
        force_check_only || config.mode == Mode::DryRun,
        config.deploy_timeout,
    );
    settings.integration_username = config.salesforce.username.clone();
    settings.attribution =
        config
            .salesforce
            .username
            .as_ref()
            .map(|username| AttributionSettings {
                integration_username: username.clone(),
                matchers: Matchers::default(),
                window: attribution::DEFAULT_WINDOW,
            });
    settings
}
