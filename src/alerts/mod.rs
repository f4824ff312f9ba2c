//! Alerts to a Slack-compatible incoming webhook (`IPGUARD_ALERT_WEBHOOK_URL`): drift
//! remediated, reconcile failing, locked out, recovered.
//!
//! The controller calls [`Alerter::observe`] after every run. Deciding whether the run is news
//! ([`incident`]) happens right there, synchronously and without I/O; the resulting alert is
//! handed to one delivery task through a bounded queue with `try_send`, so a slow or dead
//! webhook can never hold up a reconcile — at worst alerts are dropped, logged and counted.
//! The single task delivers alerts in order, each retried with backoff ([`delivery`]).

pub mod delivery;
pub mod incident;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use tokio::sync::mpsc;

pub use delivery::{AlertRetry, Delivered, deliver, deliver_counted};
pub use incident::{Alert, AlertKind, FailKind, IncidentState};

use crate::metrics::{AlertCounters, DropLabels};
use crate::reconcile::run::RunReport;

/// Alerts waiting for delivery before new ones are dropped. Alerts are rare (one per
/// incident or remediation), so a full queue means the webhook has been down for a while.
pub const DEFAULT_QUEUE: usize = 32;

/// Sends run alerts to the webhook in the background. Cheap to clone; clones share the
/// incident state, the queue and the counters.
#[derive(Clone)]
pub struct Alerter {
    /// `None`: no webhook configured, everything is dropped silently.
    queue: Option<Arc<Queue>>,
    counters: AlertCounters,
}

struct Queue {
    tx: mpsc::Sender<Alert>,
    /// Per org, seeded from the stored run history when this process takes an org over.
    states: Mutex<HashMap<String, IncidentState>>,
}

impl std::fmt::Debug for Alerter {
    // Never the URL: it is a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("enabled", &self.queue.is_some())
            .field("delivered", &self.delivered())
            .field("failed", &self.failed())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Alerter {
    /// Spawns the delivery task on the current Tokio runtime. `None` webhook (or no runtime) →
    /// an Alerter that drops everything and spawns nothing.
    pub fn start(
        http: reqwest::Client,
        webhook: Option<SecretString>,
        retry: AlertRetry,
    ) -> Alerter {
        Self::start_with_queue(http, webhook, retry, DEFAULT_QUEUE)
    }

    /// [`Alerter::start`] with a queue of `capacity` alerts (at least 1).
    pub fn start_with_queue(
        http: reqwest::Client,
        webhook: Option<SecretString>,
        retry: AlertRetry,
        capacity: usize,
    ) -> Alerter {
        Self::start_counted(http, webhook, retry, capacity, AlertCounters::default())
    }

    /// [`Alerter::start_with_queue`] counting into `counters` (the service passes the ones
    /// `/metrics` shows: sent, retried, dropped by reason).
    pub fn start_counted(
        http: reqwest::Client,
        webhook: Option<SecretString>,
        retry: AlertRetry,
        capacity: usize,
        counters: AlertCounters,
    ) -> Alerter {
        let Some(url) = webhook else {
            return Self::disabled();
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("alerts disabled: Alerter::start was called outside a Tokio runtime");
            return Self::disabled();
        };
        let (tx, rx) = mpsc::channel(capacity.max(1));
        runtime.spawn(deliver_all(rx, http, url, retry, counters.clone()));
        Alerter {
            queue: Some(Arc::new(Queue {
                tx,
                states: Mutex::new(HashMap::new()),
            })),
            counters,
        }
    }

    /// An Alerter that drops everything (no webhook configured).
    pub fn disabled() -> Alerter {
        Alerter {
            queue: None,
            counters: AlertCounters::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Sets where `org`'s incident stands, as replayed from the stored run history
    /// ([`IncidentState::replay`]); call it whenever this process takes the org over.
    pub fn seed(&self, org: &str, state: IncidentState) {
        let Some(queue) = &self.queue else { return };
        queue
            .states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org.to_owned(), state);
    }

    /// Call after every run of `org`. Never blocks and never fails: the alert this run
    /// deserves (if any) is queued; a full queue drops it with a warning and a count.
    pub fn observe(&self, org: &str, report: &RunReport) {
        let Some(queue) = &self.queue else { return };
        let (before, alert) = {
            let mut states = queue.states.lock().unwrap_or_else(|e| e.into_inner());
            let state = states.entry(org.to_owned()).or_default();
            let before = *state;
            (before, state.observe(org, report))
        };
        let Some(alert) = alert else { return };
        let kind = alert.kind;
        if let Err(e) = queue.tx.try_send(alert) {
            // Undo the transition so the next run raises the incident again instead of the
            // alert being lost for the whole incident.
            queue
                .states
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(org.to_owned(), before);
            self.counters
                .dropped
                .get_or_create(&DropLabels {
                    reason: "queue_full",
                })
                .inc();
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the alert queue is full",
                mpsc::error::TrySendError::Closed(_) => "the alert delivery task has stopped",
            };
            tracing::warn!(org, kind = ?kind, "alert dropped: {why}");
        }
    }

    /// Says which profiles an `@app:` entry newly guards or no longer guards: news once, outside
    /// any incident (the run that found it may well be in sync).
    pub fn announce(&self, org: &str, changes: &[crate::reconcile::guarded::GuardChange]) {
        let Some(queue) = &self.queue else { return };
        let mut text = format!("ipguard: the guarded profiles of {org} changed");
        for change in changes {
            text.push_str(&format!("\n• {change}"));
        }
        let alert = Alert {
            kind: AlertKind::GuardChanged,
            text,
        };
        if queue.tx.try_send(alert).is_err() {
            self.counters
                .dropped
                .get_or_create(&DropLabels {
                    reason: "queue_full",
                })
                .inc();
            tracing::warn!(org, "alert dropped: the alert queue is full");
        }
    }

    /// Alerts dropped because the queue was full (or the delivery task gone).
    pub fn dropped(&self) -> u64 {
        self.dropped_for("queue_full")
    }

    /// Alerts the webhook accepted.
    pub fn delivered(&self) -> u64 {
        self.counters.sent.get()
    }

    /// Alerts given up on (refused, or retries exhausted).
    pub fn failed(&self) -> u64 {
        self.dropped_for("refused") + self.dropped_for("gave_up")
    }

    fn dropped_for(&self, reason: &'static str) -> u64 {
        self.counters
            .dropped
            .get_or_create(&DropLabels { reason })
            .get()
    }
}

/// The one delivery task: alerts in order, each retried before the next. Ends when every
/// Alerter clone is gone and the queue is drained.
async fn deliver_all(
    mut rx: mpsc::Receiver<Alert>,
    http: reqwest::Client,
    url: SecretString,
    retry: AlertRetry,
    counters: AlertCounters,
) {
    let dropped = |reason| counters.dropped.get_or_create(&DropLabels { reason }).inc();
    while let Some(alert) = rx.recv().await {
        match deliver_counted(&http, &url, &alert, &retry, &counters.retried).await {
            Delivered::Ok { attempts } => {
                counters.sent.inc();
                tracing::info!(kind = ?alert.kind, attempts, "alert delivered");
            }
            Delivered::Refused { status } => {
                dropped("refused");
                tracing::error!(
                    kind = ?alert.kind,
                    status,
                    "alert webhook refused the alert; not retrying (is IPGUARD_ALERT_WEBHOOK_URL still valid?)"
                );
            }
            Delivered::GaveUp { attempts, last } => {
                dropped("gave_up");
                tracing::error!(
                    kind = ?alert.kind,
                    attempts,
                    error = %last,
                    "alert not delivered; giving up"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
