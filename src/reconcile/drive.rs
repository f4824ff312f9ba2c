//! One run of one org, recorded under the org's lease: the driver `serve`'s controller and
//! `ipguard apply` share (docs/contract.md §5 rules 5, 8 and 12).
//!
//! Between the run's typed steps the driver keeps the records: the run is started (consuming
//! its hints), the lease is confirmed right before the one Salesforce write (the deploy), the
//! deploy id is recorded before polling (so a restarted process resumes instead of deploying
//! again), and the outcome is recorded last. Every record is fenced by the lease's token, and
//! the lease is renewed while the run goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::plan::{Ownership, PlanRecord};
use super::run::{OnPoll, Outcome, Prepared, Run, RunReport, Submitted};
use crate::ranges::LoginIpRange;
use crate::salesforce::metadata::DeployId;
use crate::store::{Fence, InFlightDeploy, OwnedRange, RunId, Store, StoreError};
use crate::trigger::Triggers;

/// The right to run an org: a held lease and the fence its records are written under.
pub struct Tenure<'a> {
    pub store: &'a Store,
    pub holder: &'a str,
    pub ttl: Duration,
    pub fence: Fence,
    lost: AtomicBool,
}

/// Another instance holds the org's lease now; the run stopped without writing further.
#[derive(Debug, thiserror::Error)]
#[error("lost the lease of org {org_id}: {why}")]
pub struct LeaseLost {
    pub org_id: String,
    pub why: String,
}

/// How a driven run ended.
#[derive(Debug)]
pub enum Driven {
    /// Recorded as run `id`.
    Recorded(RunId, Box<RunReport>),
    /// The run could not be recorded (store unavailable): nothing was sent to Salesforce.
    NotStarted(StoreError),
    /// Stopped because the lease moved on; what is recorded stays for the new holder.
    LeaseLost(LeaseLost),
}

impl<'a> Tenure<'a> {
    /// Takes (or renews) the org's lease for `holder`; `Ok(None)` while another holds it.
    pub async fn acquire(
        store: &'a Store,
        org_id: &str,
        holder: &'a str,
        ttl: Duration,
    ) -> Result<Option<Tenure<'a>>, StoreError> {
        Ok(store
            .try_acquire_lease(org_id, holder, ttl)
            .await?
            .map(|lease| Tenure {
                store,
                holder,
                ttl,
                fence: lease.fence(),
                lost: AtomicBool::new(false),
            }))
    }

    /// Starts the tenure: runs an earlier holder left open before deploying (it stopped or
    /// lost its lease) are closed as `failed`, so none reads as running forever.
    pub async fn begin(&self) {
        match self
            .store
            .close_abandoned_runs(
                &self.fence,
                "abandoned before any deploy: the instance running it stopped or lost its lease",
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "closed runs an earlier holder left open"),
            Err(e) => tracing::warn!(error = %e, "could not close runs left open"),
        }
    }

    pub fn org_id(&self) -> &str {
        &self.fence.org_id
    }

    /// Renews the lease; an error once another tenure has begun (or the store cannot say).
    pub async fn confirm(&self) -> Result<(), LeaseLost> {
        let lost = |why: String| LeaseLost {
            org_id: self.fence.org_id.clone(),
            why,
        };
        if self.lost.load(Ordering::Acquire) {
            return Err(lost("a renewal found it taken".into()));
        }
        match self
            .store
            .try_acquire_lease(&self.fence.org_id, self.holder, self.ttl)
            .await
        {
            Ok(Some(lease)) if lease.fencing_token == self.fence.token => Ok(()),
            Ok(Some(lease)) => {
                self.lost.store(true, Ordering::Release);
                Err(lost(format!(
                    "it expired and a new tenure began (token {} → {})",
                    self.fence.token, lease.fencing_token
                )))
            }
            Ok(None) => {
                self.lost.store(true, Ordering::Release);
                Err(lost("another instance holds it".into()))
            }
            // Without the store nobody can prove the lease: no Salesforce write.
            Err(e) => Err(lost(format!("cannot confirm it: {e}"))),
        }
    }

    /// Renews the lease every third of its TTL until dropped; a lost lease is remembered so
    /// that [`Tenure::confirm`] refuses the next write at once.
    async fn keep_renewed(&self) {
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            if let Err(e) = self.confirm().await {
                tracing::error!(error = %e, "the run goes on reading; it writes nothing more");
            }
        }
    }

    /// Ends the lease now so a standby can take over at once (shutdown, end of `apply`).
    pub async fn release(&self) {
        if let Err(e) = self
            .store
            .release_lease(&self.fence.org_id, self.holder)
            .await
        {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }

    /// Runs `work` while renewing the lease.
    pub async fn renewing<T>(&self, work: impl Future<Output = T>) -> T {
        tokio::select! {
            value = work => value,
            () = self.keep_renewed() => unreachable!("renewal never ends"),
        }
    }
}

/// What the store recorded as ipguard's own on the org's profiles (docs/contract.md §1 Owned ranges).
pub async fn load_ownership(store: &Store, org_id: &str) -> Result<Ownership, StoreError> {
    let mut ownership = Ownership::default();
    for owned in store.owned_ranges(org_id).await? {
        let (Ok(start), Ok(end)) = (owned.start.parse(), owned.end.parse()) else {
            tracing::warn!(profile = %owned.profile, "skipping an unreadable owned range");
            continue;
        };
        ownership
            .0
            .entry(owned.profile)
            .or_default()
            .insert((start, end));
    }
    Ok(ownership)
}

fn owned_rows(profiles: &[String], desired: &[LoginIpRange]) -> Vec<OwnedRange> {
    profiles
        .iter()
        .flat_map(|profile| {
            desired.iter().map(move |r| OwnedRange {
                profile: profile.clone(),
                start: r.start().to_string(),
                end: r.end().to_string(),
            })
        })
        .collect()
}

/// A fresh run recorded with `trigger` (consuming `hint_ids`), stepped by its caller:
/// [`RecordedRun::prepare`] → [`RecordedRun::submit`] → [`RecordedRun::finish`]. Each step
/// returns what the run found so the caller can show it; `Err` is how the run ended (recorded
/// already, or stopped by a lost lease). The caller renews the lease around the steps
/// ([`Tenure::renewing`]).
pub struct RecordedRun<'r> {
    run: &'r Run<'r>,
    tenure: &'r Tenure<'r>,
    pub id: RunId,
}

impl<'r> RecordedRun<'r> {
    /// Records the run's start; nothing is sent to Salesforce unless this succeeds.
    pub async fn start(
        run: &'r Run<'r>,
        tenure: &'r Tenure<'r>,
        trigger: &Triggers,
        hint_ids: &[i64],
    ) -> Result<Self, Driven> {
        let names = run.profiles.entries();
        match tenure
            .store
            .start_run(&tenure.fence, trigger, hint_ids, &names)
            .await
        {
            Ok(id) => Ok(Self { run, tenure, id }),
            Err(StoreError::Fenced { .. }) => Err(Driven::LeaseLost(LeaseLost {
                org_id: tenure.fence.org_id.clone(),
                why: "a new tenure began before the run started".into(),
            })),
            Err(e) => Err(Driven::NotStarted(e)),
        }
    }

    /// Sources, read, plan (against the recorded ownership). `Ok` only when a deploy is due.
    pub async fn prepare(&self) -> Result<Prepared, Driven> {
        let ownership = match load_ownership(self.tenure.store, self.tenure.org_id()).await {
            Ok(o) => o,
            Err(e) => {
                // Without the record, an `ipguard:` text could pass for ours: do not plan.
                let mut report = RunReport::empty();
                report.error = Some(format!("cannot read the owned ranges: {e}"));
                return Err(self.end(report).await);
            }
        };
        match self.run.prepare(&ownership).await {
            Ok(p) if p.needs_deploy() => Ok(p),
            Ok(p) => Err(self.end(p.into_report()).await),
            Err(report) => Err(self.end(report).await),
        }
    }

    /// The one Salesforce write, only while the tenure still holds the lease: the ranges are
    /// claimed as ipguard's, the deploy submitted and its id recorded before any polling.
    pub async fn submit(&self, prepared: Prepared) -> Result<Submitted, Driven> {
        let tenure = self.tenure;
        tenure.confirm().await.map_err(Driven::LeaseLost)?;
        let deployed = deployed_profiles(&prepared.report);
        if !self.run.settings.check_only {
            // Claimed before the deploy: if it fails half-way nothing ipguard wrote is forgotten.
            let claim = owned_rows(&deployed, &prepared.report.desired);
            match tenure
                .store
                .record_owned_ranges(&tenure.fence, &[], &claim)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Fenced { .. }) => {
                    return Err(self.lost("a new tenure began before the deploy".into()));
                }
                Err(e) => {
                    let mut report = prepared.into_report();
                    report.outcome = Outcome::Failed;
                    report.error = Some(format!(
                        "cannot record the ranges about to be deployed, so nothing was deployed: {e}"
                    ));
                    return Err(self.end(report).await);
                }
            }
        }
        let submitted = match self.run.submit(prepared).await {
            Ok(s) => s,
            Err(report) => return Err(self.end(report).await),
        };
        match tenure
            .store
            .record_deploy(
                &tenure.fence,
                self.id,
                submitted.id.as_str(),
                submitted.check_only,
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Fenced { .. }) => {
                return Err(self.lost(format!(
                    "deploy {} was submitted as the lease moved on; the new holder reads the org afresh",
                    submitted.id
                )));
            }
            // The deploy is already on its way: keep polling it, but say the record is missing.
            Err(e) => {
                tracing::error!(deploy_id = %submitted.id, error = %e, "could not record the submitted deploy");
            }
        }
        Ok(submitted)
    }

    /// Polls the deploy to its end, reads back, records the ownership and the outcome.
    pub async fn finish(&self, submitted: Submitted, on_poll: OnPoll<'_>) -> Driven {
        let deployed = deployed_profiles(&submitted.report);
        let report = self.run.finish(submitted, on_poll).await;
        settle_ownership(self.tenure, &deployed, &report).await;
        self.end(report).await
    }

    async fn end(&self, report: RunReport) -> Driven {
        record(self.tenure, self.id, report).await
    }

    fn lost(&self, why: String) -> Driven {
        Driven::LeaseLost(LeaseLost {
            org_id: self.tenure.fence.org_id.clone(),
            why,
        })
    }
}

/// A deploy an earlier process (or an earlier run) recorded and never saw finish.
pub async fn resume_recorded(
    run: &Run<'_>,
    tenure: &Tenure<'_>,
    in_flight: &InFlightDeploy,
    on_poll: OnPoll<'_>,
) -> Driven {
    let report = match DeployId::parse(&in_flight.deploy_id) {
        Ok(id) => {
            tracing::info!(deploy_id = %id, run = in_flight.run_id, "resuming a deploy submitted before a restart");
            let ownership = load_ownership(tenure.store, tenure.org_id())
                .await
                .unwrap_or_default();
            let report = tenure
                .renewing(run.resume(
                    id,
                    in_flight.check_only,
                    in_flight.submitted_at,
                    &ownership,
                    on_poll,
                ))
                .await;
            // A resumed deploy was verified against every profile: the run's profiles hold
            // exactly what ipguard owns.
            let profiles: Vec<String> = report.guarded.iter().map(|p| p.to_string()).collect();
            settle_ownership(tenure, &profiles, &report).await;
            report
        }
        Err(e) => {
            let mut report = RunReport::empty();
            report.outcome = Outcome::Unknown;
            report.error = Some(format!(
                "the recorded deploy id is unusable ({e}); closed without a result"
            ));
            report.deploy_closed = true;
            report
        }
    };
    record(tenure, in_flight.run_id, report).await
}

fn deployed_profiles(report: &RunReport) -> Vec<String> {
    report
        .plan
        .iter()
        .flat_map(|p| p.drifted())
        .map(|p| p.name.to_string())
        .collect()
}

/// After a verified deploy, exactly the desired ranges are ipguard's on the deployed profiles:
/// the owned ones no longer desired are gone from them.
async fn settle_ownership(tenure: &Tenure<'_>, profiles: &[String], report: &RunReport) {
    if report.outcome != Outcome::Remediated || profiles.is_empty() {
        return;
    }
    let rows = owned_rows(profiles, &report.desired);
    if let Err(e) = tenure
        .store
        .record_owned_ranges(&tenure.fence, profiles, &rows)
        .await
    {
        // The claim made before the deploy stays: old ranges stay ours and go next run.
        tracing::warn!(error = %e, "could not record the owned ranges after the deploy");
    }
}

/// Records the outcome (closing the deploy when the report says so).
async fn record(tenure: &Tenure<'_>, run_id: RunId, report: RunReport) -> Driven {
    // The plan record carries the attribution: what drifted and who changed it.
    let plan = report
        .plan
        .as_ref()
        .map(|p| PlanRecord::new(p, report.grants.clone(), report.attribution.clone()));
    let store = tenure.store;
    let written = if report.deploy_closed {
        let reason = report.error.as_deref().unwrap_or("closed without a result");
        store.close_deploy(&tenure.fence, run_id, reason).await
    } else {
        store
            .finish_run(
                &tenure.fence,
                run_id,
                report.outcome,
                plan.as_ref(),
                &report.failures,
                report.error.as_deref(),
            )
            .await
    };
    match written {
        Ok(()) => Driven::Recorded(run_id, Box::new(report)),
        Err(StoreError::Fenced { .. }) => Driven::LeaseLost(LeaseLost {
            org_id: tenure.fence.org_id.clone(),
            why: format!(
                "run {run_id} ended {} after the lease moved on; its record is left to the new holder",
                report.outcome
            ),
        }),
        Err(e) => {
            tracing::error!(error = %e, run = run_id, "cannot record the run outcome");
            Driven::Recorded(run_id, Box::new(report))
        }
    }
}
