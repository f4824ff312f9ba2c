//! The reconcile loop of `ipguard serve`: hints in, one run at a time out.
//!
//! Level-triggered like a Kubernetes controller: hints (webhooks, admin, timer, start-up) only
//! say "look now". Exactly one instance — the lease holder — reconciles an org; hints recorded
//! by any instance wake it. Hints within the debounce window coalesce; hints arriving during a
//! run stay pending and cause exactly one follow-up run. After each run the pure error policy
//! (`policy.rs`) picks the next action, so nothing ever hot-loops against Salesforce; an
//! operator's own request (`POST /reconcile`) is never held back by that backoff.
//!
//! A standby sleeps until the leader's lease would expire, so it takes over within the lease
//! TTL of the leader's last renewal.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::doors::SideDoors;
use super::drive::{self, Driven, RecordedRun, Tenure};
use super::guarded::{self, Grant, Guarded, ProfileSelection};
use super::policy::{Backoff, NextAction, Streak};
use super::run::{Outcome, Run, RunReport, RunSettings, Sources};
use super::share::Share;
use super::status::{ProfileStatus, StatusBoard};
use crate::alerts::IncidentState;
use crate::metrics::{DoorLabels, Metrics, OrgLabels, OutcomeLabels, ProfileLabels};
use crate::salesforce::client::MetadataClient;
use crate::store::{MIN_DELIVERY_RETENTION, NewHint, Store};
use crate::trigger::{Trigger, Triggers};

/// Timing of the loop.
#[derive(Debug, Clone)]
pub struct ControllerTiming {
    pub debounce: Duration,
    pub resync_interval: Duration,
    pub lease_ttl: Duration,
    /// First pause after a failed run; doubles per consecutive failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Pause after `locked_out`: only a human can fix it, so retry slowly.
    pub locked_out_backoff: Duration,
}

impl ControllerTiming {
    pub fn new(debounce: Duration, resync_interval: Duration) -> Self {
        let backoff = Backoff::default();
        Self {
            debounce,
            resync_interval,
            lease_ttl: Duration::from_secs(30),
            min_backoff: backoff.min,
            max_backoff: backoff.max,
            locked_out_backoff: backoff.locked_out,
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            min: self.min_backoff,
            max: self.max_backoff,
            locked_out: self.locked_out_backoff,
        }
    }
}

/// How often the leader prunes what is past any redelivery window (delivery keys, spent
/// JWT ids, consumed hints); the first time when it takes the lease.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How many of an org's latest runs are replayed to learn where its incident stands.
const INCIDENT_HISTORY: u32 = 200;

pub struct Controller {
    pub store: Store,
    /// The org's key in `IPGUARD_ORGS` (or `default`): how metrics and alerts name it.
    pub org_name: String,
    /// The key its hints, runs and lease are filed under.
    pub org_key: String,
    /// How alerts name the org (its key in `IPGUARD_ORGS` beside its id, when there are many).
    pub alert_name: String,
    /// A key whose earlier history becomes this org's when it takes the lease (an older
    /// version filed every org under one shared key).
    pub adopt_legacy_key: Option<&'static str>,
    /// Unique per process: the lease holder name.
    pub holder: String,
    pub client: MetadataClient,
    pub sources: Sources,
    pub settings: RunSettings,
    pub profiles: ProfileSelection,
    pub doors: SideDoors,
    /// The app grants of the last run that expanded `@app:` entries (`None`: not known yet,
    /// so the next expansion raises no alert).
    pub last_grants: Mutex<Option<Vec<Grant>>>,
    pub timing: ControllerTiming,
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    /// Slack-compatible alerts: one per incident, delivered off the reconcile path.
    pub alerts: crate::alerts::Alerter,
    /// This instance's part of the orgs, shared by its controllers (one per org).
    pub share: Arc<Share>,
}

/// Where the loop stands between runs.
struct Schedule {
    next_resync: Instant,
    /// Set by the error policy: no run before this unless an operator asks.
    not_before: Option<Instant>,
    streak: Streak,
    reconcile_now: bool,
    next_prune: Instant,
    /// Gave the lease up for another instance's fair share: not taken again before this
    /// (unless nobody took it).
    yielded_until: Option<Instant>,
}

impl Controller {
    /// Runs until `shutdown` turns true. A run still going then is dropped where it stands:
    /// no Salesforce write starts after the signal; a deploy already submitted stays recorded
    /// for the next process, which resumes polling it.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self
            .store
            .enqueue_hint(&NewHint {
                org_id: self.org_key.clone(),
                trigger: Trigger::Startup,
                detail: None,
            })
            .await
        {
            tracing::warn!(error = %e, "could not record the start-up hint");
        }
        let mut schedule = Schedule {
            next_resync: Instant::now() + self.jittered(self.timing.resync_interval),
            not_before: None,
            streak: Streak::default(),
            reconcile_now: false,
            next_prune: Instant::now(),
            yielded_until: None,
        };
        let mut tenure: Option<Tenure<'_>> = None;
        while !*shutdown.borrow() {
            tokio::select! {
                () = self.step(&mut tenure, &mut schedule) => {}
                _ = shutdown.changed() => {}
            }
        }
        if let Some(tenure) = tenure {
            self.share.lost();
            tenure.release().await;
        }
    }

    /// One turn of the loop: hold the lease, then run, wait or back off.
    async fn step<'a>(&'a self, tenure: &mut Option<Tenure<'a>>, schedule: &mut Schedule) {
        // Between runs: hand this org to an instance with less than its share.
        if tenure.is_some() && self.share.give_up_one() {
            if let Some(held) = tenure.take() {
                tracing::info!(
                    fair = self.share.fair(),
                    "giving the lease up to another instance (this one holds more than its share of the orgs)"
                );
                held.release().await;
                self.status.update(|s| s.leader = false);
                self.metrics.leader.get_or_create(&self.org_labels()).set(0);
            }
            // Long enough for a standby, which looks at least once a TTL, to take it.
            schedule.yielded_until = Some(Instant::now() + self.timing.lease_ttl * 2);
        }
        if tenure.is_none()
            && let Some(until) = schedule.yielded_until.take()
            && Instant::now() < until
            && !self.taken_by_another().await
        {
            // Still nobody's: leave it to the others a little longer.
            schedule.yielded_until = Some(until);
            tokio::time::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(self.timing.lease_ttl / 3),
            )
            .await;
            return;
        }
        match Tenure::acquire(
            &self.store,
            &self.org_key,
            &self.holder,
            self.timing.lease_ttl,
        )
        .await
        {
            Ok(Some(held)) => {
                if tenure.is_none() {
                    self.share.took();
                }
                if tenure.as_ref().map(|t| t.fence.token) != Some(held.fence.token) {
                    self.begin_tenure(&held).await;
                }
                *tenure = Some(held);
            }
            Ok(None) => {
                if tenure.take().is_some() {
                    self.share.lost();
                    tracing::warn!("lost the reconcile lease");
                    self.status.update(|s| s.leader = false);
                    self.metrics.leader.get_or_create(&self.org_labels()).set(0);
                }
                tokio::time::sleep(self.until_lease_may_expire().await).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable; cannot take the lease");
                tokio::time::sleep(self.timing.min_backoff).await;
                return;
            }
        }
        let Some(tenure) = tenure.as_ref() else {
            return;
        };
        let renew_by = Instant::now() + self.timing.lease_ttl / 3;
        if Instant::now() >= schedule.next_prune {
            schedule.next_prune = Instant::now() + PRUNE_EVERY;
            match self.store.prune(MIN_DELIVERY_RETENTION).await {
                Ok(rows) => tracing::info!(rows, "pruned what is past any redelivery window"),
                Err(e) => tracing::warn!(error = %e, "could not prune the store"),
            }
        }

        match self.store.in_flight_deploy(&self.org_key).await {
            Ok(Some(in_flight)) => {
                let run = self.one_run();
                let driven = drive::resume_recorded(&run, tenure, &in_flight, &mut |_| {}).await;
                self.after(driven, schedule).await;
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable; cannot read in-flight deploys");
                tokio::time::sleep(self.timing.min_backoff).await;
                return;
            }
        }

        let hints = match self.store.pending_hints(&self.org_key).await {
            Ok(hints) => hints,
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable; cannot read hints");
                tokio::time::sleep(self.timing.min_backoff).await;
                return;
            }
        };
        let now = Instant::now();
        let operator_asked = hints.iter().any(|h| h.trigger.is_operator());
        let held_back = schedule.not_before.is_some_and(|t| now < t) && !operator_asked;
        let due = schedule.reconcile_now
            || schedule.not_before.is_some_and(|t| now >= t)
            || now >= schedule.next_resync;
        if held_back || (hints.is_empty() && !due) {
            let until = match schedule.not_before {
                Some(t) if held_back => t,
                _ => schedule.next_resync,
            };
            let wait = until.saturating_duration_since(now).min(renew_by - now);
            self.store.wait_for_hint(&self.org_key, wait).await;
            return;
        }
        if !hints.is_empty() && !schedule.reconcile_now {
            // Let a burst finish arriving, then take it all in one run.
            tokio::time::sleep(self.timing.debounce).await;
        }
        let timer = if schedule.not_before.is_some() {
            Trigger::Retry
        } else {
            Trigger::Resync
        };
        self.reconcile(tenure, timer, schedule).await;
    }

    async fn begin_tenure(&self, tenure: &Tenure<'_>) {
        tracing::info!(holder = %self.holder, token = tenure.fence.token, "acquired the reconcile lease");
        self.status.update(|s| s.leader = true);
        self.metrics.leader.get_or_create(&self.org_labels()).set(1);
        tenure.begin().await;
        if let Some(legacy) = self.adopt_legacy_key {
            match self.store.adopt_legacy_key(&tenure.fence, legacy).await {
                Ok(0) => {}
                Ok(runs) => tracing::info!(
                    runs,
                    from = legacy,
                    "filed the earlier run history under this org's key"
                ),
                Err(e) => tracing::warn!(error = %e, "could not move the earlier run history"),
            }
        }
        // Whether an incident is under way is in the run history, not in this process.
        match self
            .store
            .recent_runs_of(&self.org_key, INCIDENT_HISTORY)
            .await
        {
            Ok(runs) => {
                let outcomes = runs.iter().rev().filter_map(|r| r.outcome);
                self.alerts
                    .seed(&self.alert_name, IncidentState::replay(outcomes));
                // Which app grants are news is in the newest run that planned.
                let grants = runs
                    .iter()
                    .find_map(|r| r.plan.as_ref())
                    .map(|plan| plan.grants.clone());
                *self.last_grants.lock().unwrap_or_else(|e| e.into_inner()) = grants;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the run history for alerts"),
        }
    }

    /// Whether another instance holds the org's lease now (it took what this one gave up; from
    /// here on this one is an ordinary standby, ready to take over when that holder dies).
    async fn taken_by_another(&self) -> bool {
        matches!(
            self.store.lease(&self.org_key).await,
            Ok(Some(state)) if state.lease.holder != self.holder && !state.expires_in.is_zero()
        )
    }

    /// How long a standby sleeps before trying the lease again: until just after the
    /// holder's lease would expire (so a dead leader is replaced within the TTL), at most a
    /// third of a TTL (so a lease another instance gives up for the orgs' spread is taken
    /// soon: the holder's renewals keep pushing the expiry a TTL ahead).
    async fn until_lease_may_expire(&self) -> Duration {
        const MARGIN: Duration = Duration::from_millis(50);
        match self.store.lease(&self.org_key).await {
            Ok(Some(state)) => (state.expires_in + MARGIN).min(self.timing.lease_ttl / 3),
            Ok(None) => MARGIN,
            Err(_) => self.timing.min_backoff,
        }
    }

    /// One full run for the pending hints, or for the timer (`resync`, or `retry` after a
    /// failure) when there are none.
    async fn reconcile(&self, tenure: &Tenure<'_>, timer: Trigger, schedule: &mut Schedule) {
        let hints = match self.store.pending_hints(&self.org_key).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable; cannot read hints");
                return;
            }
        };
        // A set in first-seen order (`admin`, `outbound_message`, `admin` is
        // `admin,outbound_message`), or the timer's when there are no hints.
        let trigger = Triggers::of_hints(hints.iter().map(|h| h.trigger), timer);
        let ids: Vec<i64> = hints.iter().map(|h| h.id).collect();
        let run = self.one_run();
        let steps = async {
            let recorded = RecordedRun::start(&run, tenure, &trigger, &ids).await?;
            let prepared = recorded.prepare().await?;
            let submitted = recorded.submit(prepared).await?;
            Ok::<_, Driven>(recorded.finish(submitted, &mut |_| {}).await)
        };
        let (Ok(driven) | Err(driven)) = tenure.renewing(steps).await;
        self.after(driven, schedule).await;
    }

    /// Reports a driven run and lets the error policy set the schedule.
    async fn after(&self, driven: Driven, schedule: &mut Schedule) {
        match driven {
            Driven::Recorded(run_id, report) => {
                self.report(run_id, &report);
                self.publish_status().await;
                let (action, streak) = self.timing.backoff().next(
                    report.outcome,
                    report.deploy_closed,
                    schedule.streak,
                );
                schedule.streak = streak;
                schedule.reconcile_now = action == NextAction::ReconcileNow;
                schedule.next_resync = Instant::now() + self.jittered(self.timing.resync_interval);
                schedule.not_before = match action {
                    NextAction::RetryAfter(pause) => {
                        let at = Instant::now() + self.jittered(pause);
                        schedule.next_resync = at;
                        Some(at)
                    }
                    NextAction::AwaitHints | NextAction::ReconcileNow => None,
                };
            }
            Driven::NotStarted(e) => {
                tracing::warn!(error = %e, "cannot record the run start; nothing sent to Salesforce");
            }
            Driven::LeaseLost(e) => tracing::warn!(error = %e, "run stopped"),
        }
    }

    /// Stores what this run saw, so every instance's `/status` shows the same.
    async fn publish_status(&self) {
        let snapshot = self.status.snapshot();
        let Ok(doc) = serde_json::to_value(&snapshot) else {
            return;
        };
        if let Err(e) = self.store.put_status(&self.org_key, &doc).await {
            tracing::warn!(error = %e, "could not store the status snapshot");
        }
    }

    fn one_run(&self) -> Run<'_> {
        Run {
            client: &self.client,
            sources: &self.sources,
            settings: &self.settings,
            profiles: &self.profiles,
            doors: &self.doors,
        }
    }

    fn report(&self, run_id: i64, report: &RunReport) {
        self.show(report);
        self.metrics
            .runs
            .get_or_create(&OutcomeLabels {
                org: self.org_name.clone(),
                outcome: report.outcome.as_str(),
            })
            .inc();
        self.alerts.observe(&self.alert_name, report);
        self.announce_guard_changes(report);
        self.status.update(|s| {
            s.locked_out = report.outcome == Outcome::LockedOut;
            s.last_error = report.error.clone();
        });
        tracing::info!(
            run = run_id,
            outcome = %report.outcome,
            deploy_id = report.deploy_id.as_ref().map(|d| d.as_str()),
            duration_ms = report.duration_ms as u64,
            profiles = report.guarded.len(),
            error = report.error.as_deref(),
            "run finished"
        );
    }

    /// Alerts (once) on profiles an `@app:` entry newly guards or no longer guards, against the
    /// grants of the last run that expanded them.
    fn announce_guard_changes(&self, report: &RunReport) {
        if self.profiles.apps.is_empty() || report.plan.is_none() {
            return;
        }
        let now = Guarded {
            profiles: report.guarded.clone(),
            grants: report.grants.clone(),
        };
        let before = self
            .last_grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(report.grants.clone());
        let Some(before) = before else { return };
        let changes = guarded::changes(&before, &now, &self.profiles.named);
        for change in &changes {
            tracing::warn!(org = %self.alert_name, "{change}");
        }
        if !changes.is_empty() {
            self.alerts.announce(&self.alert_name, &changes);
        }
    }

    /// Keeps `/status` and the in-sync gauges current from what the run found: the profiles as
    /// read back after a deploy, else as planned.
    fn show(&self, report: &RunReport) {
        if let Some(elapsed) = report.deploy_elapsed {
            self.metrics
                .deploy_duration_seconds
                .get_or_create(&self.org_labels())
                .observe(elapsed.as_secs_f64());
        }
        if !report.sources.is_empty() {
            let list = report.sources.iter().map(|s| s.net.to_string()).collect();
            self.status.update(|s| s.sources = list);
        }
        if !report.desired.is_empty() {
            let desired = report.desired.clone();
            self.status.update(|s| s.desired = desired);
        }
        let Some(plan) = report.verified.as_ref().or(report.plan.as_ref()) else {
            return;
        };
        let now = chrono::Utc::now();
        let profiles: Vec<ProfileStatus> = plan
            .profiles
            .iter()
            .map(|p| ProfileStatus {
                name: p.name.to_string(),
                ranges: p.keep.iter().chain(&p.remove).cloned().collect(),
                in_sync: p.in_sync,
                checked_at: now,
                policy: Some(p.policy),
                policy_from: Some(p.policy_from),
                why: p.why.clone(),
                granted: report
                    .grants
                    .iter()
                    .filter(|g| g.profile == p.name)
                    .map(|g| format!("app {}, {}", g.app, g.via))
                    .collect(),
            })
            .collect();
        for p in &profiles {
            self.metrics
                .profile_in_sync
                .get_or_create(&ProfileLabels {
                    org: self.org_name.clone(),
                    profile: p.name.clone(),
                })
                .set(i64::from(p.in_sync));
        }
        for d in &plan.doors {
            self.metrics
                .side_door_in_sync
                .get_or_create(&DoorLabels {
                    org: self.org_name.clone(),
                    door: d.door.as_str(),
                })
                .set(i64::from(d.in_sync));
        }
        let doors = plan.doors.clone();
        self.status.update(|s| {
            s.profiles = profiles;
            s.doors = doors;
        });
    }

    fn org_labels(&self) -> OrgLabels {
        OrgLabels {
            org: self.org_name.clone(),
        }
    }

    /// ±10 % so many instances (and the org's API limits) don't see synchronised bursts.
    fn jittered(&self, base: Duration) -> Duration {
        let factor = rand::rng().random_range(0.9..=1.1);
        base.mul_f64(factor)
    }
}
