//! Prometheus metrics (`GET /metrics`): what operators alert on.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub source: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Which guarded org: its key in `IPGUARD_ORGS`, or `default` (docs/contract.md §8).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabels {
    pub org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub org: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCallLabels {
    pub org: String,
    pub operation: &'static str,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabels {
    pub org: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoorLabels {
    pub org: String,
    /// `every-request` or `app-relaxation`.
    pub door: &'static str,
}

type DeployHistogram = Family<OrgLabels, Histogram, fn() -> Histogram>;

/// Profile deploys take seconds; a stuck one minutes.
fn deploy_histogram() -> Histogram {
    Histogram::new([0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0])
}

/// Why an alert never reached the webhook.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `queue_full` (the webhook was slow or down for a while), `refused` (a 4xx other than
    /// 429: bad or revoked webhook) or `gave_up` (retries exhausted).
    pub reason: &'static str,
}

/// Alert delivery, so a dead alert webhook can itself be alerted on. Cheap to clone; clones
/// count into the same series.
#[derive(Clone, Debug, Default)]
pub struct AlertCounters {
    /// Alerts the webhook accepted.
    pub sent: Counter,
    /// Attempts repeated after a 429, a 5xx or a transport error.
    pub retried: Counter,
    pub dropped: Family<DropLabels, Counter>,
}

pub struct Metrics {
    registry: Registry,
    pub notifications: Family<NotificationLabels, Counter>,
    pub jwt_rejections: Family<ReasonLabels, Counter>,
    pub runs: Family<OutcomeLabels, Counter>,
    pub deploy_duration_seconds: DeployHistogram,
    pub salesforce_api_calls: Family<ApiCallLabels, Counter>,
    pub profile_in_sync: Family<ProfileLabels, Gauge>,
    /// Per guarded side door (`IPGUARD_SIDE_DOORS`), 1 when it was shut at the last read.
    pub side_door_in_sync: Family<DoorLabels, Gauge>,
    /// Per org, 1 while this instance holds its lease: run counters and the per-profile
    /// gauges are the reconciling instance's, so a scraper sums or picks the leader's.
    pub leader: Family<OrgLabels, Gauge>,
    pub alerts: AlertCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ipguard");
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Webhook deliveries by source (outbound_message, platform_event) and outcome",
            notifications.clone(),
        );
        let jwt_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "jwt_rejections",
            "Platform event callouts refused, by reason",
            jwt_rejections.clone(),
        );
        let runs = Family::<OutcomeLabels, Counter>::default();
        registry.register("runs", "Reconcile runs by outcome", runs.clone());
        let deploy_duration_seconds: DeployHistogram =
            Family::new_with_constructor(deploy_histogram);
        registry.register(
            "deploy_duration_seconds",
            "Time from deploy submission to its final status",
            deploy_duration_seconds.clone(),
        );
        let salesforce_api_calls = Family::<ApiCallLabels, Counter>::default();
        registry.register(
            "salesforce_api_calls",
            "Salesforce API calls by operation and outcome",
            salesforce_api_calls.clone(),
        );
        let profile_in_sync = Family::<ProfileLabels, Gauge>::default();
        registry.register(
            "profile_in_sync",
            "1 when the profile held the desired ranges at the last read, else 0",
            profile_in_sync.clone(),
        );
        let side_door_in_sync = Family::<DoorLabels, Gauge>::default();
        registry.register(
            "side_door_in_sync",
            "1 when the guarded side door was as ipguard holds it at the last read, else 0",
            side_door_in_sync.clone(),
        );
        let leader = Family::<OrgLabels, Gauge>::default();
        registry.register(
            "leader",
            "1 while this instance holds the org's reconcile lease (its gauges are the org's), else 0",
            leader.clone(),
        );
        let alerts = AlertCounters::default();
        registry.register(
            "alerts_sent",
            "Alerts the alert webhook accepted",
            alerts.sent.clone(),
        );
        registry.register(
            "alert_retries",
            "Alert deliveries repeated after a 429, a 5xx or a transport error",
            alerts.retried.clone(),
        );
        registry.register(
            "alerts_dropped",
            "Alerts that never reached the webhook, by reason (queue_full, refused, gave_up)",
            alerts.dropped.clone(),
        );
        Self {
            alerts,
            leader,
            registry,
            notifications,
            jwt_rejections,
            runs,
            deploy_duration_seconds,
            salesforce_api_calls,
            profile_in_sync,
            side_door_in_sync,
        }
    }

    pub fn notification(&self, source: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels { source, outcome })
            .inc();
    }

    /// OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let m = Metrics::new();
        let org = || "prod".to_owned();
        m.notification("outbound_message", "accepted");
        m.jwt_rejections
            .get_or_create(&ReasonLabels { reason: "expired" })
            .inc();
        m.runs
            .get_or_create(&OutcomeLabels {
                org: org(),
                outcome: "in_sync",
            })
            .inc();
        m.salesforce_api_calls
            .get_or_create(&ApiCallLabels {
                org: org(),
                operation: "readMetadata",
                outcome: "ok".into(),
            })
            .inc();
        m.profile_in_sync
            .get_or_create(&ProfileLabels {
                org: org(),
                profile: "Admin".into(),
            })
            .set(1);
        m.side_door_in_sync
            .get_or_create(&DoorLabels {
                org: org(),
                door: "every-request",
            })
            .set(0);
        m.deploy_duration_seconds
            .get_or_create(&OrgLabels { org: org() })
            .observe(1.2);
        m.leader.get_or_create(&OrgLabels { org: org() }).set(0);
        let text = m.render();
        for needle in [
            "ipguard_notifications_total{source=\"outbound_message\",outcome=\"accepted\"} 1",
            "ipguard_jwt_rejections_total{reason=\"expired\"} 1",
            "ipguard_runs_total{org=\"prod\",outcome=\"in_sync\"} 1",
            "ipguard_salesforce_api_calls_total{org=\"prod\",operation=\"readMetadata\",outcome=\"ok\"} 1",
            "ipguard_profile_in_sync{org=\"prod\",profile=\"Admin\"} 1",
            "ipguard_side_door_in_sync{org=\"prod\",door=\"every-request\"} 0",
            "ipguard_deploy_duration_seconds_count{org=\"prod\"} 1",
            "ipguard_leader{org=\"prod\"} 0",
            "ipguard_alerts_sent_total 0",
            "ipguard_alert_retries_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
