//! Heroku Platform API: the Private Space's outbound (NAT) IPs.

use std::net::IpAddr;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum HerokuError {
    #[error("Heroku API unreachable: {0}")]
    Transport(String),
    #[error(
        "Heroku API refused the token (HTTP 401): set HEROKU_API_TOKEN to a valid token (`heroku authorizations:create`)"
    )]
    Unauthorized,
    #[error(
        "Heroku space `{0}` not found (HTTP 404): check HEROKU_SPACE and the token's team access"
    )]
    NotFound(String),
    #[error("Heroku API answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("Heroku API returned an unreadable NAT document: {0}")]
    Response(String),
}

/// The space's NAT state as the Platform API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceNat {
    pub state: String,
    pub sources: Vec<IpAddr>,
}

impl SpaceNat {
    /// Only an `enabled` NAT's sources are the space's real egress IPs.
    pub fn is_enabled(&self) -> bool {
        self.state == "enabled"
    }

    /// The space's egress IPs, or why there are none to trust (docs/contract.md §5 rule 1): a NAT that is
    /// not `enabled`, or `enabled` with no IPs, is a stale or partial source. `check` and every
    /// run judge the NAT here and nowhere else.
    pub fn usable_sources(&self, space: &str) -> Result<&[IpAddr], NatUnusable> {
        if !self.is_enabled() {
            return Err(NatUnusable::NotEnabled {
                space: space.to_owned(),
                state: self.state.clone(),
            });
        }
        if self.sources.is_empty() {
            return Err(NatUnusable::NoSources {
                space: space.to_owned(),
            });
        }
        Ok(&self.sources)
    }
}

/// A NAT state ipguard refuses to deploy from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatUnusable {
    #[error(
        "Heroku space `{space}` NAT state is `{state}`, not `enabled`: refusing to deploy from a stale source"
    )]
    NotEnabled { space: String, state: String },
    #[error(
        "Heroku space `{space}` NAT is `enabled` but lists no outbound IPs: refusing to deploy from a partial source"
    )]
    NoSources { space: String },
}

#[derive(Deserialize)]
struct NatDocument {
    state: String,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorDocument {
    #[serde(default)]
    message: String,
}

pub struct HerokuClient {
    http: reqwest::Client,
    api_url: Url,
    space: String,
    token: SecretString,
    retry_delays: ExponentialBuilder,
}

impl HerokuClient {
    pub fn new(http: reqwest::Client, api_url: Url, space: &str, token: SecretString) -> Self {
        Self {
            http,
            api_url,
            space: space.to_owned(),
            token,
            retry_delays: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(4)
                .with_jitter(),
        }
    }

    /// Shortens retry pauses (tests).
    pub fn with_retry_delays(mut self, min: Duration, max: Duration) -> Self {
        self.retry_delays = self.retry_delays.with_min_delay(min).with_max_delay(max);
        self
    }

    pub fn space(&self) -> &str {
        &self.space
    }

    /// `GET /spaces/{space}/nat`, retrying 429 and 5xx with backoff.
    pub async fn nat(&self) -> Result<SpaceNat, HerokuError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .map_err(|_| HerokuError::Transport("HEROKU_API_URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(["spaces", &self.space, "nat"]);
        (|| self.fetch(&url))
            .retry(self.retry_delays)
            .when(is_transient)
            .notify(|e, delay| tracing::warn!(error = %e, ?delay, "Heroku API failure; retrying"))
            .await
    }

    async fn fetch(&self, url: &Url) -> Result<SpaceNat, HerokuError> {
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(self.token.expose_secret())
            .header("Accept", "application/vnd.heroku+json; version=3")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| HerokuError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| HerokuError::Transport(e.without_url().to_string()))?;
        match status.as_u16() {
            200 => {}
            401 => return Err(HerokuError::Unauthorized),
            404 => return Err(HerokuError::NotFound(self.space.clone())),
            status => {
                let message = serde_json::from_slice::<ErrorDocument>(&body)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| crate::salesforce::auth::excerpt(&body));
                return Err(HerokuError::Http { status, message });
            }
        }
        let doc: NatDocument =
            serde_json::from_slice(&body).map_err(|e| HerokuError::Response(e.to_string()))?;
        let sources = doc
            .sources
            .iter()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| HerokuError::Response(format!("`{s}` is not an IP address")))
            })
            .collect::<Result<_, _>>()?;
        Ok(SpaceNat {
            state: doc.state,
            sources,
        })
    }
}

fn is_transient(error: &HerokuError) -> bool {
    match error {
        HerokuError::Transport(_) => true,
        HerokuError::Http { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}
