//! Posting one alert to a Slack-compatible incoming webhook, with retries.
//!
//! The webhook URL is a credential (anyone holding it can post to the channel), so it is never
//! logged: reqwest errors are stripped of their URL before they are shown.

use std::time::Duration;

use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};
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

/// Why the webhook did not take an alert.
enum NotAccepted {
    Permanent(StatusCode),
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

async fn attempt(
    http: &reqwest::Client,
    url: &SecretString,
    alert: &Alert,
) -> Result<(), NotAccepted> {
    let sent = http
        .post(url.expose_secret())
        .timeout(REQUEST_TIMEOUT)
        .json(&serde_json::json!({ "text": alert.text }))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            return Err(NotAccepted::Retry {
                why: e.without_url().to_string(),
                retry_after: None,
            });
        }
    };
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(NotAccepted::Retry {
            why: format!("HTTP {status}"),
            retry_after,
        })
    } else {
        Err(NotAccepted::Permanent(status))
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
    let backoff = ExponentialBuilder::default()
        .with_min_delay(retry.min_delay)
        .with_max_delay(retry.max_delay)
        .with_jitter()
        .with_max_times(attempts as usize - 1);
    let made = AtomicU32::new(0);
    let delivered = (|| {
        made.fetch_add(1, Ordering::Relaxed);
        attempt(http, url, alert)
    })
    .retry(backoff)
    .when(|failed| matches!(failed, NotAccepted::Retry { .. }))
    // Jitter may push past max_delay; Retry-After replaces the backoff when given. `None`
    // (attempts used up) stays `None`.
    .adjust(|failed, backoff| {
        let retry_after = match failed {
            NotAccepted::Retry { retry_after, .. } => *retry_after,
            NotAccepted::Permanent(_) => None,
        };
        backoff.map(|b| retry_after.unwrap_or(b).min(retry.max_delay))
    })
    .notify(|failed, delay| {
        if let NotAccepted::Retry { why, .. } = failed {
            tracing::warn!(
                kind = ?alert.kind,
                attempt = made.load(Ordering::Relaxed),
                error = %why,
                retry_in_ms = delay.as_millis() as u64,
                "alert webhook did not accept the alert; retrying"
            );
        }
        retried.inc();
    })
    .await;
    let made = made.load(Ordering::Relaxed);
    match delivered {
        Ok(()) => Delivered::Ok { attempts: made },
        Err(NotAccepted::Permanent(status)) => Delivered::Refused {
            status: status.as_u16(),
        },
        Err(NotAccepted::Retry { why, .. }) => Delivered::GaveUp {
            attempts: made,
            last: why,
        },
    }
}
