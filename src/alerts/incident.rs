//! The incident state machine: which run outcomes are news.
//!
//! Pure: run outcome in, at most one alert out. A remediation is always news; a failure is
//! news only when it starts an incident (the controller retries with backoff, and every retry
//! would otherwise page someone again); a lock-out is always its own incident because only a
//! human can fix it; the first good run after an incident says it is over.

use crate::reconcile::run::{Outcome, RunReport};

/// Longest error text quoted in an alert; Salesforce fault strings can be long.
const MAX_ERROR_CHARS: usize = 1_500;
/// Component failures quoted in an alert; the rest are counted.
const MAX_FAILURES: usize = 5;

/// Which kind of failure a failing incident started with (or last saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Failed,
    /// The deploy outlived the poll window.
    Unknown,
}

/// Where an org stands, as far as alerts are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncidentState {
    #[default]
    Healthy,
    /// `runs` failed runs so far in this incident.
    Failing { kind: FailKind, runs: u32 },
    /// `runs` locked-out runs so far in this incident.
    LockedOut { runs: u32 },
    /// Dry-run: drift found and not remediated (`planned` runs), announced once.
    WouldRemediate { runs: u32 },
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Remediated,
    Failing,
    LockedOut,
    Recovered,
    /// Dry-run found drift: what enforce would deploy.
    WouldRemediate,
    /// An `@app:` entry guards a new profile or no longer guards one.
    GuardChanged,
}

/// One message for the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    /// Plain text; the first line is a short summary.
    pub text: String,
}

impl IncidentState {
    /// The state after these run outcomes, oldest first: how a process that just took an org
    /// over (a restart, a new leader) learns whether an incident is under way, so it neither
    /// pages again nor forgets to say "recovered".
    pub fn replay(outcomes: impl IntoIterator<Item = Outcome>) -> IncidentState {
        outcomes
            .into_iter()
            .fold(IncidentState::Healthy, IncidentState::after)
    }

    /// The state after one more run ended `outcome`.
    fn after(self, outcome: Outcome) -> IncidentState {
        match (outcome, self) {
            (Outcome::Planned, Self::Healthy) => Self::WouldRemediate { runs: 1 },
            (Outcome::Planned, Self::WouldRemediate { runs }) => Self::WouldRemediate {
                runs: runs.saturating_add(1),
            },
            (Outcome::Planned, state) => state,
            (Outcome::InSync | Outcome::Remediated, _) => Self::Healthy,
            (Outcome::Failed | Outcome::Unknown, before) => {
                let kind = if outcome == Outcome::Unknown {
                    FailKind::Unknown
                } else {
                    FailKind::Failed
                };
                let runs = match before {
                    Self::Failing { runs, .. } => runs.saturating_add(1),
                    _ => 1,
                };
                Self::Failing { kind, runs }
            }
            (Outcome::LockedOut, Self::LockedOut { runs }) => Self::LockedOut {
                runs: runs.saturating_add(1),
            },
            (Outcome::LockedOut, _) => Self::LockedOut { runs: 1 },
        }
    }

    /// Moves to the state after `report`; returns the alert this transition deserves, if any.
    pub fn observe(&mut self, org: &str, report: &RunReport) -> Option<Alert> {
        let before = *self;
        *self = before.after(report.outcome);
        let kind = match (report.outcome, before) {
            // Dry-run drift is news once per incident (docs/contract.md §5 rule 11); while a failure or a
            // lock-out is under way, a validated check-only deploy says nothing about it.
            (Outcome::Planned, Self::Healthy) => AlertKind::WouldRemediate,
            (Outcome::Planned, _) => return None,
            (Outcome::Remediated, Self::Healthy | Self::WouldRemediate { .. }) => {
                AlertKind::Remediated
            }
            // The drift a dry-run announced went away by other hands: nothing to page about.
            (Outcome::InSync, Self::Healthy | Self::WouldRemediate { .. }) => return None,
            (Outcome::InSync | Outcome::Remediated, _) => AlertKind::Recovered,
            (Outcome::Failed | Outcome::Unknown, Self::Failing { .. }) => return None,
            // Healthy → a new incident. LockedOut → the token works again (someone fixed the
            // profile) but runs still fail: a different problem, and the person who fixed the
            // lock-out must not think they are done.
            (Outcome::Failed | Outcome::Unknown, _) => AlertKind::Failing,
            (Outcome::LockedOut, Self::LockedOut { .. }) => return None,
            (Outcome::LockedOut, _) => AlertKind::LockedOut,
        };
        let text = match kind {
            AlertKind::Remediated => remediated_text(org, report),
            AlertKind::Recovered => recovered_text(org, before, report),
            AlertKind::Failing => failing_text(org, report, before),
            AlertKind::LockedOut => locked_out_text(org, report),
            // Raised by `Alerter::announce`, never by a run's outcome.
            AlertKind::GuardChanged => return None,
            AlertKind::WouldRemediate => would_remediate_text(org, report),
        };
        Some(Alert { kind, text })
    }
}

fn remediation_lines(report: &RunReport, text: &mut String) {
    if let Some(plan) = &report.plan {
        for p in plan.drifted() {
            text.push_str(&format!(
                "\n• {}: {} range(s) added, {} removed",
                p.name,
                p.add.len(),
                p.remove.len()
            ));
        }
        for d in plan.drifted_doors() {
            text.push_str(&format!(
                "\n• side door {} ({}): {} → {}",
                d.door, d.subject, d.actual, d.wanted
            ));
        }
    }
    if let Some(attribution) = &report.attribution {
        let profiles = attribution
            .attributions
            .iter()
            .take(5)
            .map(|a| (&a.changed_by, a.changed_at, a.profile.to_string()));
        let doors = attribution
            .doors
            .iter()
            .take(5)
            .map(|a| (&a.changed_by, a.changed_at, format!("side door {}", a.door)));
        for (by, at, what) in profiles.chain(doors) {
            text.push_str(&format!(
                "\nchanged by {by} at {} ({what})",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
    }
    if let Some(id) = &report.deploy_id {
        text.push_str(&format!(
            "\ndeploy id: {id} (verified by reading the profiles back)"
        ));
    }
}

fn drifted_count(report: &RunReport) -> usize {
    report.plan.as_ref().map_or(0, |p| p.drifted().count())
}

/// `2 profile(s)`, `1 profile(s) and 1 side door(s)`.
fn drifted_summary(report: &RunReport) -> String {
    let doors = report
        .plan
        .as_ref()
        .map_or(0, |p| p.drifted_doors().count());
    let profiles = format!("{} profile(s)", drifted_count(report));
    if doors == 0 {
        profiles
    } else {
        format!("{profiles} and {doors} side door(s)")
    }
}

fn remediated_text(org: &str, report: &RunReport) -> String {
    let mut text = format!(
        "ipguard: drift remediated on {} in org {org}",
        drifted_summary(report)
    );
    remediation_lines(report, &mut text);
    text
}

fn would_remediate_text(org: &str, report: &RunReport) -> String {
    let mut text = format!(
        "ipguard (dry-run): would remediate drift on {} profile(s) in org {org}; nothing was changed \
         (IPGUARD_MODE=dry-run). Further dry-run runs stay silent until the drift is gone.",
        drifted_count(report)
    );
    if let Some(plan) = &report.plan {
        text.push('\n');
        text.push_str(crate::cli::render::plan_text(plan).trim_end());
    }
    if let Some(attribution) = &report.attribution {
        for a in attribution.attributions.iter().take(5) {
            text.push_str(&format!(
                "\nchanged by {} at {} ({})",
                a.changed_by,
                a.changed_at.format("%Y-%m-%d %H:%M:%S UTC"),
                a.profile
            ));
        }
    }
    text
}

fn failing_text(org: &str, report: &RunReport, before: IncidentState) -> String {
    let mut text = match report.outcome {
        Outcome::Unknown => {
            format!("ipguard: reconcile failing in org {org} (deploy outcome unknown)")
        }
        _ => format!("ipguard: reconcile failing in org {org}"),
    };
    if matches!(before, IncidentState::LockedOut { .. }) {
        text.push_str("\nThe lock-out is over (the token is accepted again), but runs still fail.");
    }
    push_error(report, &mut text);
    text.push_str(
        "\nipguard keeps retrying with backoff; further failures stay silent until it recovers.",
    );
    text
}

fn locked_out_text(org: &str, report: &RunReport) -> String {
    let mut text = format!(
        "ipguard: LOCKED OUT of org {org}: Salesforce refuses the integration user's login from this IP"
    );
    push_error(report, &mut text);
    text.push_str(
        "\nManual fix: in Setup → Profiles, open the integration user's profile → Login IP Ranges \
         and add the Heroku Private Space's outbound IPs. The OAuth JWT bearer flow always \
         enforces profile login IP ranges (relaxing the app's IP policy does not help), so \
         ipguard cannot repair its own profile once it is locked out.",
    );
    if !report.desired.is_empty() {
        text.push_str("\nThe ranges to allow:");
        for range in &report.desired {
            text.push_str(&format!("\n• {range}"));
        }
    }
    text.push_str("\nipguard retries slowly and sends one alert when it recovers.");
    text
}

fn recovered_text(org: &str, incident: IncidentState, report: &RunReport) -> String {
    let after = match incident {
        IncidentState::LockedOut { runs } => format!("a lock-out ({runs} locked-out run(s))"),
        IncidentState::Failing { runs, .. } => format!("{runs} failed run(s)"),
        IncidentState::WouldRemediate { runs } => format!("{runs} dry-run run(s) with drift"),
        IncidentState::Healthy => "an incident".to_owned(),
    };
    let mut text = format!("ipguard: recovered in org {org} after {after}");
    if report.outcome == Outcome::Remediated {
        text.push_str(&format!(
            "\nThis run remediated drift on {} profile(s):",
            drifted_count(report)
        ));
        remediation_lines(report, &mut text);
    } else {
        text.push_str("\nAll guarded profiles are in sync.");
    }
    text
}

fn push_error(report: &RunReport, text: &mut String) {
    if let Some(error) = &report.error {
        text.push_str("\nerror: ");
        text.push_str(&truncate(error, MAX_ERROR_CHARS));
    }
    // The error line usually already joins the failures; list them only when it does not.
    let unquoted: Vec<&String> = report
        .failures
        .iter()
        .filter(|f| !report.error.as_deref().unwrap_or("").contains(f.as_str()))
        .collect();
    for failure in unquoted.iter().take(MAX_FAILURES) {
        text.push_str("\n• ");
        text.push_str(&truncate(failure, MAX_ERROR_CHARS));
    }
    if unquoted.len() > MAX_FAILURES {
        text.push_str(&format!("\n… and {} more", unquoted.len() - MAX_FAILURES));
    }
    if let Some(id) = &report.deploy_id {
        text.push_str(&format!("\ndeploy id: {id}"));
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::ranges::LoginIpRange;
    use crate::reconcile::plan::{Owned, Plan, PolicyRules, plan_profile};
    use crate::salesforce::metadata::DeployId;
    use crate::salesforce::profile::ProfileName;

    const ORG: &str = "00D000000000001EAA";

    fn report(outcome: Outcome) -> RunReport {
        RunReport {
            outcome,
            desired: vec![LoginIpRange::parse_existing("52.1.2.3", "52.1.2.3", None).unwrap()],
            plan: None,
            deploy_id: None,
            deploy_status: None,
            failures: Vec::new(),
            error: None,
            duration_ms: 1,
            attribution: None,
            deploy_closed: false,
            ..RunReport::empty()
        }
    }

    #[test]
    fn replaying_the_history_gives_the_state_observing_it_would() {
        use Outcome::*;
        let histories: &[&[Outcome]] = &[
            &[],
            &[Remediated, InSync],
            &[InSync, Failed, Unknown, Failed],
            &[Failed, LockedOut, LockedOut],
            &[LockedOut, Failed],
            &[Failed, Planned, InSync],
            &[LockedOut, Planned],
        ];
        for history in histories {
            let mut observed = IncidentState::Healthy;
            for outcome in *history {
                observed.observe(ORG, &report(*outcome));
            }
            assert_eq!(
                IncidentState::replay(history.iter().copied()),
                observed,
                "{history:?}"
            );
        }
        assert_eq!(
            IncidentState::replay([Failed, Failed]),
            IncidentState::Failing {
                kind: FailKind::Failed,
                runs: 2
            }
        );
        // a process that takes over mid-incident pages nothing new, and says "recovered"
        let mut state = IncidentState::replay([InSync, LockedOut]);
        assert_eq!(kinds(&mut state, &[report(LockedOut)]), []);
        assert_eq!(kinds(&mut state, &[report(InSync)]), [AlertKind::Recovered]);
    }

    fn remediated() -> RunReport {
        let r = |a: &str| LoginIpRange::parse_existing(a, a, None).unwrap();
        let desired = [r("52.1.2.3")];
        let drifted = plan_profile(
            ProfileName::parse("Custom%3A Integration").unwrap(),
            &[r("9.9.9.9")],
            &desired,
            &PolicyRules::uniform(Policy::Exact),
            &Owned::ByDescription,
        );
        let clean = plan_profile(
            ProfileName::parse("Admin").unwrap(),
            &desired,
            &desired,
            &PolicyRules::uniform(Policy::Exact),
            &Owned::ByDescription,
        );
        let mut report = report(Outcome::Remediated);
        report.plan = Some(Plan::new(Policy::Exact, vec![drifted, clean]));
        report.deploy_id = Some(DeployId::parse("0Af000000000001AAA").unwrap());
        report
    }

    fn failed(error: &str) -> RunReport {
        let mut r = report(Outcome::Failed);
        r.error = Some(error.to_owned());
        r
    }

    fn kinds(state: &mut IncidentState, reports: &[RunReport]) -> Vec<AlertKind> {
        reports
            .iter()
            .filter_map(|r| state.observe(ORG, r))
            .map(|a| a.kind)
            .collect()
    }

    #[test]
    fn in_sync_is_silent_and_dry_run_drift_alerts_once_per_incident() {
        let mut s = IncidentState::Healthy;
        assert!(kinds(&mut s, &[report(Outcome::InSync)]).is_empty());
        assert_eq!(s, IncidentState::Healthy);
        // docs/contract.md §5 rule 11: one "would remediate" per incident, then silence …
        assert_eq!(
            kinds(
                &mut s,
                &[report(Outcome::Planned), report(Outcome::Planned)]
            ),
            [AlertKind::WouldRemediate]
        );
        // … until the drift is gone; the next drift is a new incident
        assert!(kinds(&mut s, &[report(Outcome::InSync)]).is_empty());
        assert_eq!(
            kinds(&mut s, &[report(Outcome::Planned)]),
            [AlertKind::WouldRemediate]
        );
    }

    #[test]
    fn every_remediation_alerts_with_profiles_and_deploy_id() {
        let mut s = IncidentState::Healthy;
        let a = s.observe(ORG, &remediated()).unwrap();
        assert_eq!(a.kind, AlertKind::Remediated);
        let first = a.text.lines().next().unwrap();
        assert_eq!(
            first,
            format!("ipguard: drift remediated on 1 profile(s) in org {ORG}")
        );
        assert!(
            a.text
                .contains("• Custom%3A Integration: 1 range(s) added, 1 removed")
        );
        assert!(!a.text.contains("Admin"), "in-sync profiles are not listed");
        assert!(a.text.contains("0Af000000000001AAA"));
        assert_eq!(
            s.observe(ORG, &remediated()).unwrap().kind,
            AlertKind::Remediated
        );
        assert_eq!(s, IncidentState::Healthy);
    }

    #[test]
    fn three_failures_one_alert() {
        let mut s = IncidentState::Healthy;
        let reports = [failed("boom 1"), failed("boom 2"), report(Outcome::Unknown)];
        assert_eq!(kinds(&mut s, &reports), [AlertKind::Failing]);
        assert_eq!(
            s,
            IncidentState::Failing {
                kind: FailKind::Unknown,
                runs: 3
            }
        );
    }

    #[test]
    fn failing_alert_quotes_the_error() {
        let mut s = IncidentState::Healthy;
        let a = s
            .observe(ORG, &failed("Heroku space `x` NAT state is `updating`"))
            .unwrap();
        assert!(
            a.text
                .starts_with(&format!("ipguard: reconcile failing in org {ORG}\n"))
        );
        assert!(
            a.text
                .contains("error: Heroku space `x` NAT state is `updating`")
        );
    }

    #[test]
    fn unknown_starts_an_incident_too() {
        let mut s = IncidentState::Healthy;
        let a = s.observe(ORG, &report(Outcome::Unknown)).unwrap();
        assert_eq!(a.kind, AlertKind::Failing);
        assert!(a.text.lines().next().unwrap().contains("unknown"));
    }

    #[test]
    fn failure_then_lock_out_alerts_lock_out() {
        let mut s = IncidentState::Healthy;
        let reports = [failed("x"), failed("y"), report(Outcome::LockedOut)];
        assert_eq!(
            kinds(&mut s, &reports),
            [AlertKind::Failing, AlertKind::LockedOut]
        );
        assert_eq!(s, IncidentState::LockedOut { runs: 1 });
    }

    #[test]
    fn lock_out_is_loud_once_with_the_manual_fix() {
        let mut s = IncidentState::Healthy;
        let mut r = report(Outcome::LockedOut);
        r.error = Some("token refused: invalid_grant: ip restricted".into());
        let a = s.observe(ORG, &r).unwrap();
        assert_eq!(a.kind, AlertKind::LockedOut);
        assert!(
            a.text
                .starts_with(&format!("ipguard: LOCKED OUT of org {ORG}"))
        );
        assert!(a.text.contains("integration user's profile"));
        assert!(a.text.contains("JWT bearer"));
        assert!(a.text.contains("• 52.1.2.3"), "lists the ranges to allow");
        assert!(a.text.contains("ip restricted"));
        assert!(s.observe(ORG, &r).is_none());
        assert!(s.observe(ORG, &r).is_none());
        assert_eq!(s, IncidentState::LockedOut { runs: 3 });
    }

    #[test]
    fn lock_out_then_in_sync_recovers() {
        let mut s = IncidentState::Healthy;
        let reports = [
            report(Outcome::LockedOut),
            report(Outcome::LockedOut),
            report(Outcome::InSync),
            report(Outcome::InSync),
        ];
        let alerts: Vec<Alert> = reports.iter().filter_map(|r| s.observe(ORG, r)).collect();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1].kind, AlertKind::Recovered);
        assert!(
            alerts[1]
                .text
                .starts_with(&format!("ipguard: recovered in org {ORG} after a lock-out"))
        );
        assert_eq!(s, IncidentState::Healthy);
    }

    #[test]
    fn failure_then_remediation_is_one_recovered_alert_with_the_details() {
        let mut s = IncidentState::Healthy;
        s.observe(ORG, &failed("x"));
        s.observe(ORG, &failed("x"));
        let a = s.observe(ORG, &remediated()).unwrap();
        assert_eq!(a.kind, AlertKind::Recovered);
        assert!(a.text.contains("after 2 failed run(s)"));
        assert!(a.text.contains("Custom%3A Integration"));
        assert!(a.text.contains("0Af000000000001AAA"));
        assert_eq!(s, IncidentState::Healthy);
    }

    #[test]
    fn planned_does_not_end_an_incident() {
        let mut s = IncidentState::Healthy;
        s.observe(ORG, &failed("x"));
        assert!(s.observe(ORG, &report(Outcome::Planned)).is_none());
        assert!(matches!(s, IncidentState::Failing { runs: 1, .. }));
        assert_eq!(
            s.observe(ORG, &report(Outcome::InSync)).unwrap().kind,
            AlertKind::Recovered
        );
    }

    #[test]
    fn lock_out_lifted_but_still_failing_alerts_failing() {
        let mut s = IncidentState::Healthy;
        s.observe(ORG, &report(Outcome::LockedOut));
        let a = s.observe(ORG, &failed("deploy ended Failed")).unwrap();
        assert_eq!(a.kind, AlertKind::Failing);
        assert!(a.text.contains("lock-out is over"));
        assert!(s.observe(ORG, &failed("again")).is_none());
    }

    #[test]
    fn long_errors_and_many_failures_are_bounded() {
        let mut r = failed(&"é".repeat(5_000));
        r.failures = (0..20).map(|i| format!("component failure {i}")).collect();
        let a = IncidentState::Healthy.observe(ORG, &r).unwrap();
        assert!(a.text.chars().count() < 3_000);
        assert!(a.text.contains("component failure 4"));
        assert!(!a.text.contains("component failure 5"));
        assert!(a.text.contains("… and 15 more"));
    }
}
