//! Posting one alert to a Slack-compatible incoming webhook, with retries.
//!
//! The webhook URL is a credential (anyone holding it can post to the channel), so it is never
//! logged: reqwest errors are stripped of their URL before they are shown.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use prometheus_client::metrics::counter::Counter;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use secrecy::{ExposeSecret, SecretString};

use super::incident::Alert;

/// How hard to try to deliver one alert.
#[derive(Debug, Clone)]
pub struct AlertRetry {
    /// Total attempts, the first included (at least 1 is made).
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for AlertRetry {
    /// 6 attempts, 1 s growing to 60 s with jitter: about two minutes of trying.
    fn default() -> Self {
        Self {
            attempts: 6,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// One request may take this long before it counts as a transport failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ok {
        attempts: u32,
    },
    /// A 4xx other than 429: retrying cannot help (bad or revoked webhook).
    Refused {
        status: u16,
    },
    GaveUp {
        attempts: u32,
        last: String,
    },
}

enum Attempt {
    Ok,
    Permanent(StatusCode),
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

async fn attempt(http: &reqwest::Client, url: &SecretString, alert: &Alert) -> Attempt {
    let sent = http
        .post(url.expose_secret())
        .timeout(REQUEST_TIMEOUT)
        .json(&serde_json::json!({ "text": alert.text }))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Retry {
                why: e.without_url().to_string(),
                retry_after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        Attempt::Ok
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Attempt::Retry {
            why: format!("HTTP {status}"),
            retry_after,
        }
    } else {
        Attempt::Permanent(status)
    }
}

/// Posts `alert` until it is accepted (2xx), refused (4xx other than 429) or the attempts run
/// out. 429, 5xx and transport errors back off exponentially with jitter; a 429's
/// `Retry-After` (seconds) is honoured, capped at `max_delay`.
pub async fn deliver(
    http: &reqwest::Client,
    url: &SecretString,
    alert: &Alert,
    retry: &AlertRetry,
) -> Delivered {
    deliver_counted(http, url, alert, retry, &Counter::default()).await
}

/// [`deliver`], counting each repeated attempt into `retried` as it happens (a webhook that
/// keeps failing shows in `/metrics` while it is still being retried, not minutes later).
pub async fn deliver_counted(
    http: &reqwest::Client,
    url: &SecretString,
    alert: &Alert,
    retry: &AlertRetry,
    retried: &Counter,
) -> Delivered {
    let attempts = retry.attempts.max(1);
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(retry.min_delay)
        .with_max_delay(retry.max_delay)
        .with_jitter()
        .without_max_times()
        .build();
    let mut made = 0;
    loop {
        made += 1;
        match attempt(http, url, alert).await {
            Attempt::Ok => return Delivered::Ok { attempts: made },
            Attempt::Permanent(status) => {
                return Delivered::Refused {
                    status: status.as_u16(),
                };
            }
            Attempt::Retry { why, retry_after } => {
                if made >= attempts {
                    return Delivered::GaveUp {
                        attempts: made,
                        last: why,
                    };
                }
                let backoff = delays.next().unwrap_or(retry.max_delay);
                // Jitter may push past max_delay; Retry-After replaces the backoff when given.
                let delay = retry_after.unwrap_or(backoff).min(retry.max_delay);
                tracing::warn!(
                    kind = ?alert.kind,
                    attempt = made,
                    error = %why,
                    retry_in_ms = delay.as_millis() as u64,
                    "alert webhook did not accept the alert; retrying"
                );
                tokio::time::sleep(delay).await;
                retried.inc();
            }
        }
    }
}
