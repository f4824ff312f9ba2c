//! The reconcile loop of `ipguard serve`: hints in, one run at a time out.
//!
//! Level-triggered like a Kubernetes controller: hints (webhooks, admin, timer, start-up) only
//! say "look now". Exactly one instance — the lease holder — reconciles an org; hints recorded
//! by any instance wake it. Hints within the debounce window coalesce; hints arriving during a
//! run stay pending and cause exactly one follow-up run. Failures back off exponentially with
//! jitter (a lock-out to minutes), so nothing ever hot-loops against Salesforce.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::run::{
    BoxFuture, DeployJournal, Outcome, Run, RunEvent, RunReport, RunSettings, Sources,
};
use super::status::{ProfileStatus, StatusBoard};
use crate::metrics::{Metrics, OutcomeLabels, ProfileLabels};
use crate::salesforce::client::MetadataClient;
use crate::salesforce::metadata::DeployId;
use crate::salesforce::profile::ProfileName;
use crate::store::{NewHint, RunId, Store};

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
        Self {
            debounce,
            resync_interval,
            lease_ttl: Duration::from_secs(30),
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            locked_out_backoff: Duration::from_secs(300),
        }
    }
}

pub struct Controller {
    pub store: Store,
    pub org_key: String,
    /// Unique per process: the lease holder name.
    pub holder: String,
    pub client: MetadataClient,
    pub sources: Sources,
    pub settings: RunSettings,
    pub profiles: Vec<ProfileName>,
    pub timing: ControllerTiming,
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    /// Slack-compatible alerts: one per incident, delivered off the reconcile path.
    pub alerts: crate::alerts::Alerter,
}

struct StoreJournal<'a> {
    store: &'a Store,
    run: RunId,
}

impl DeployJournal for StoreJournal<'_> {
    fn deploy_submitted<'a>(
        &'a self,
        id: &'a DeployId,
        check_only: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.store
                .record_deploy(self.run, id.as_str(), check_only)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl Controller {
    /// Runs until `shutdown` turns true. An in-flight deploy is left recorded for the next
    /// process, which resumes polling it.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self
            .store
            .enqueue_hint(&NewHint {
                org_id: self.org_key.clone(),
                trigger: "startup".into(),
                detail: None,
            })
            .await
        {
            tracing::warn!(error = %e, "could not record the start-up hint");
        }
        let mut next_resync = Instant::now() + self.jittered(self.timing.resync_interval);
        let mut not_before = Instant::now();
        let mut failures: u32 = 0;
        let mut locked_out = false;
        let mut leading = false;
        while !*shutdown.borrow() {
            match self
                .store
                .try_acquire_lease(&self.org_key, &self.holder, self.timing.lease_ttl)
                .await
            {
                Ok(Some(_)) => {
                    if !leading {
                        tracing::info!(holder = %self.holder, "acquired the reconcile lease");
                        leading = true;
                        self.status.update(|s| s.leader = true);
                    }
                }
                Ok(None) => {
                    if leading {
                        tracing::warn!("lost the reconcile lease");
                        leading = false;
                        self.status.update(|s| s.leader = false);
                    }
                    self.pause(&mut shutdown, self.timing.lease_ttl / 3).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store unavailable; cannot take the lease");
                    self.pause(&mut shutdown, self.timing.min_backoff).await;
                    continue;
                }
            }

            let now = Instant::now();
            if now < not_before {
                self.pause(
                    &mut shutdown,
                    (not_before - now).min(self.timing.lease_ttl / 3),
                )
                .await;
                continue;
            }

            let outcome = match self.resume_in_flight(&mut shutdown).await {
                Some(outcome) => Some(outcome),
                None => match self.store.pending_hints(&self.org_key).await {
                    Err(e) => {
                        tracing::warn!(error = %e, "store unavailable; cannot read hints");
                        self.pause(&mut shutdown, self.timing.min_backoff).await;
                        continue;
                    }
                    Ok(hints) if hints.is_empty() && Instant::now() < next_resync => {
                        let wait = (next_resync - Instant::now()).min(self.timing.lease_ttl / 3);
                        tokio::select! {
                            _ = self.store.wait_for_hint(&self.org_key, wait) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                    Ok(hints) => {
                        if !hints.is_empty() {
                            // Let a burst finish arriving, then take it all in one run.
                            self.pause(&mut shutdown, self.timing.debounce).await;
                        }
                        let timer = if failures > 0 || locked_out {
                            "retry"
                        } else {
                            "resync"
                        };
                        self.reconcile(&mut shutdown, timer).await
                    }
                },
            };
            let Some(outcome) = outcome else { continue };
            next_resync = Instant::now() + self.jittered(self.timing.resync_interval);
            // Error policy: a failed run is retried after a growing pause even when no hint
            // arrives (the timer doubles as the retry); a lock-out retries slowly.
            match outcome {
                Outcome::InSync | Outcome::Remediated | Outcome::Planned => {
                    failures = 0;
                    locked_out = false;
                }
                Outcome::LockedOut => {
                    locked_out = true;
                    not_before = Instant::now() + self.jittered(self.timing.locked_out_backoff);
                    next_resync = not_before;
                }
                Outcome::Failed | Outcome::Unknown => {
                    failures = failures.saturating_add(1);
                    let pause = self
                        .timing
                        .min_backoff
                        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
                        .min(self.timing.max_backoff);
                    not_before = Instant::now() + self.jittered(pause);
                    next_resync = not_before;
                }
            }
        }
        if leading {
            let _ = self.store.release_lease(&self.org_key, &self.holder).await;
        }
    }

    /// A deploy an earlier process submitted and never saw finish.
    async fn resume_in_flight(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Outcome> {
        let in_flight = match self.store.in_flight_deploy(&self.org_key).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read in-flight deploys");
                return None;
            }
        };
        let id = match DeployId::parse(&in_flight.deploy_id) {
            Ok(id) => id,
            Err(e) => {
                let _ = self
                    .store
                    .finish_run(in_flight.run_id, "failed", None, &[], Some(&e.to_string()))
                    .await;
                return Some(Outcome::Failed);
            }
        };
        tracing::info!(deploy_id = %id, run = in_flight.run_id, "resuming a deploy submitted before a restart");
        let observe = self.observer();
        let journal = StoreJournal {
            store: &self.store,
            run: in_flight.run_id,
        };
        let run = self.run_with(&observe, &journal);
        let report = self
            .with_lease(shutdown, run.resume(id, in_flight.check_only))
            .await?;
        self.record(in_flight.run_id, &report).await;
        Some(report.outcome)
    }

    /// One full run for the pending hints, or for the timer (`resync`, or `retry` after a
    /// failure) when there are none.
    async fn reconcile(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        timer: &str,
    ) -> Option<Outcome> {
        let hints = self.store.pending_hints(&self.org_key).await.ok()?;
        let trigger = if hints.is_empty() {
            timer.to_owned()
        } else {
            let mut triggers: Vec<&str> = hints.iter().map(|h| h.trigger.as_str()).collect();
            triggers.dedup();
            triggers.join(",")
        };
        let ids: Vec<i64> = hints.iter().map(|h| h.id).collect();
        let names: Vec<String> = self.profiles.iter().map(|p| p.to_string()).collect();
        let run_id = match self
            .store
            .start_run(&self.org_key, &trigger, &ids, &names)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the run start");
                return None;
            }
        };
        if let Err(e) = self.store.consume_hints(&ids, run_id).await {
            tracing::warn!(error = %e, "cannot mark hints consumed");
        }
        let observe = self.observer();
        let journal = StoreJournal {
            store: &self.store,
            run: run_id,
        };
        let run = self.run_with(&observe, &journal);
        let Some(report) = self.with_lease(shutdown, run.execute()).await else {
            self.close_interrupted(run_id).await;
            return None;
        };
        self.record(run_id, &report).await;
        Some(report.outcome)
    }

    /// A run cut short by shutdown: if it submitted a deploy, that stays in flight for the
    /// next process; otherwise nothing happened in the org and the record says so.
    async fn close_interrupted(&self, run_id: RunId) {
        let submitted =
            matches!(self.store.run(run_id).await, Ok(Some(r)) if r.deploy_id.is_some());
        if !submitted {
            let _ = self
                .store
                .finish_run(
                    run_id,
                    Outcome::Failed.as_str(),
                    None,
                    &[],
                    Some(
                        "interrupted by shutdown before any deploy; the next process checks again",
                    ),
                )
                .await;
        }
    }

    fn run_with<'a>(
        &'a self,
        observe: &'a (dyn Fn(&RunEvent<'_>) + Send + Sync),
        journal: &'a dyn DeployJournal,
    ) -> Run<'a> {
        Run {
            client: &self.client,
            sources: &self.sources,
            settings: &self.settings,
            profiles: &self.profiles,
            observe,
            journal,
        }
    }

    /// Drives a run while renewing the lease; on shutdown the run is abandoned (its deploy id,
    /// if any, is already recorded and will be resumed).
    async fn with_lease<F: std::future::Future<Output = RunReport>>(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        run: F,
    ) -> Option<RunReport> {
        tokio::pin!(run);
        let renew_every = self.timing.lease_ttl / 3;
        loop {
            tokio::select! {
                report = &mut run => return Some(report),
                _ = tokio::time::sleep(renew_every) => {
                    match self.store.try_acquire_lease(&self.org_key, &self.holder, self.timing.lease_ttl).await {
                        Ok(Some(_)) => {}
                        Ok(None) => tracing::error!("lease taken over during a run; finishing it, the new holder will re-check"),
                        Err(e) => tracing::warn!(error = %e, "could not renew the lease"),
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        tracing::info!("shutting down during a run; a submitted deploy will be resumed by the next process");
                        return None;
                    }
                }
            }
        }
    }

    async fn record(&self, run_id: RunId, report: &RunReport) {
        // The plan record carries the attribution: what drifted and who changed it.
        let plan = report.plan.as_ref().and_then(|p| {
            let mut value = serde_json::to_value(p).ok()?;
            if let (Some(a), Some(map)) = (&report.attribution, value.as_object_mut()) {
                map.insert("attribution".into(), serde_json::to_value(a).ok()?);
            }
            Some(value)
        });
        if let Err(e) = self
            .store
            .finish_run(
                run_id,
                report.outcome.as_str(),
                plan.as_ref(),
                &report.failures,
                report.error.as_deref(),
            )
            .await
        {
            tracing::error!(error = %e, run = run_id, "cannot record the run outcome");
        }
        self.metrics
            .runs
            .get_or_create(&OutcomeLabels {
                outcome: report.outcome.as_str(),
            })
            .inc();
        self.alerts.observe(&self.org_key, report);
        self.status.update(|s| {
            s.locked_out = report.outcome == Outcome::LockedOut;
            s.last_error = report.error.clone();
        });
        tracing::info!(
            run = run_id,
            outcome = %report.outcome,
            deploy_id = report.deploy_id.as_ref().map(|d| d.as_str()),
            duration_ms = report.duration_ms as u64,
            profiles = self.profiles.len(),
            error = report.error.as_deref(),
            "run finished"
        );
    }

    /// Keeps `/status` and the in-sync gauges current from the run's own events.
    fn observer(&self) -> impl Fn(&RunEvent<'_>) + Send + Sync + '_ {
        let submitted = std::sync::Mutex::new(None::<std::time::Instant>);
        move |event| match event {
            RunEvent::DeployStarted { .. } => {
                if let Ok(mut s) = submitted.lock() {
                    *s = Some(std::time::Instant::now());
                }
            }
            RunEvent::Sources(sources) => {
                let list = sources.iter().map(|s| s.net.to_string()).collect();
                self.status.update(|s| s.sources = list);
            }
            RunEvent::Desired(desired) => {
                let desired = desired.to_vec();
                self.status.update(|s| s.desired = desired);
            }
            RunEvent::Planned(plan) | RunEvent::Verified(plan) => {
                let now = chrono::Utc::now();
                let profiles: Vec<ProfileStatus> = plan
                    .profiles
                    .iter()
                    .map(|p| ProfileStatus {
                        name: p.name.to_string(),
                        ranges: p.keep.iter().chain(&p.remove).cloned().collect(),
                        in_sync: p.in_sync,
                        checked_at: now,
                    })
                    .collect();
                for p in &profiles {
                    self.metrics
                        .profile_in_sync
                        .get_or_create(&ProfileLabels {
                            profile: p.name.clone(),
                        })
                        .set(i64::from(p.in_sync));
                }
                self.status.update(|s| s.profiles = profiles);
            }
            RunEvent::DeployProgress(result) if result.done => {
                if let Some(at) = submitted.lock().ok().and_then(|mut s| s.take()) {
                    self.metrics
                        .deploy_duration_seconds
                        .observe(at.elapsed().as_secs_f64());
                }
                tracing::info!(deploy_id = %result.id, status = %result.status, "deploy finished");
            }
            _ => {}
        }
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// ±10 % so many instances (and the org's API limits) don't see synchronised bursts.
    fn jittered(&self, base: Duration) -> Duration {
        let factor = rand::rng().random_range(0.9..=1.1);
        base.mul_f64(factor)
    }
}
