//! One reconcile of one org (SPEC §5): sources → read → plan → deploy → poll → verify.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use ipnet::IpNet;
use serde::Serialize;

use super::attribution::{self, AttributionResult, Matchers};
use super::plan::{Plan, plan_profile};
use crate::config::Policy;
use crate::heroku::HerokuClient;
use crate::ranges::{LoginIpRange, Source, desired_ranges};
use crate::salesforce::client::{MetadataClient, SalesforceError};
use crate::salesforce::metadata::{DeployId, DeployResult, DeployStatus, ProfileRecord};
use crate::salesforce::package::deploy_zip;
use crate::salesforce::profile::ProfileName;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InSync,
    Remediated,
    Planned,
    Failed,
    LockedOut,
    /// The deploy was still running when the poll window closed: never a success.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in_sync",
            Self::Remediated => "remediated",
            Self::Planned => "planned",
            Self::Failed => "failed",
            Self::LockedOut => "locked_out",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the allowed IPs come from.
pub struct Sources {
    pub static_ips: Vec<IpNet>,
    pub heroku: Option<HerokuClient>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Heroku(#[from] crate::heroku::HerokuError),
    #[error(
        "Heroku space `{space}` NAT state is `{state}`, not `enabled`: refusing to deploy from a stale source"
    )]
    NatNotEnabled { space: String, state: String },
    #[error(
        "the source set is empty (no IPGUARD_SOURCE_IPS and no NAT IPs): refusing to deploy an empty list"
    )]
    Empty,
}

impl Sources {
    /// The union of the static list and the space's NAT IPs, labelled by origin.
    pub async fn resolve(&self) -> Result<Vec<Source>, SourceError> {
        let mut sources: Vec<Source> = self
            .static_ips
            .iter()
            .map(|net| Source {
                net: *net,
                label: "IPGUARD_SOURCE_IPS".into(),
            })
            .collect();
        if let Some(heroku) = &self.heroku {
            let nat = heroku.nat().await?;
            if !nat.is_enabled() {
                return Err(SourceError::NatNotEnabled {
                    space: heroku.space().to_owned(),
                    state: nat.state,
                });
            }
            let label = format!("space {}", heroku.space());
            sources.extend(nat.sources.into_iter().map(|ip| Source {
                net: IpNet::from(ip),
                label: label.clone(),
            }));
        }
        if sources.is_empty() {
            return Err(SourceError::Empty);
        }
        Ok(sources)
    }
}

/// Who to blame for drift: read from `SetupAuditTrail` when a run finds drift.
#[derive(Debug, Clone)]
pub struct AttributionSettings {
    /// ipguard's own user: its changes are never attributed to anyone.
    pub integration_username: String,
    pub matchers: Matchers,
    /// How far back to look for the change.
    pub window: Duration,
}

/// Knobs of a run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub policy: Policy,
    /// Send `checkOnly` deploys: Salesforce validates, nothing changes (dry-run).
    pub check_only: bool,
    /// Poll window before the run ends `unknown`.
    pub deploy_timeout: Duration,
    pub poll_first: Duration,
    pub poll_max: Duration,
    /// `None`: don't query the audit trail.
    pub attribution: Option<AttributionSettings>,
}

impl RunSettings {
    pub fn new(policy: Policy, check_only: bool, deploy_timeout: Duration) -> Self {
        Self {
            policy,
            check_only,
            deploy_timeout,
            poll_first: Duration::from_millis(250),
            poll_max: Duration::from_secs(30),
            attribution: None,
        }
    }

    /// Poll delays: start fast (most profile deploys finish in seconds), grow to `poll_max`.
    fn poll_delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.poll_first)
            .with_max_delay(self.poll_max)
            .with_factor(1.5)
            .without_max_times()
            .build()
    }
}

/// Steps of a run, for narration (CLI progress, demo) and records.
#[derive(Debug)]
pub enum RunEvent<'a> {
    Sources(&'a [Source]),
    Desired(&'a [LoginIpRange]),
    Read(&'a [ProfileRecord]),
    Planned(&'a Plan),
    DeployStarted { id: &'a DeployId, check_only: bool },
    DeployProgress(&'a DeployResult),
    Verified(&'a Plan),
}

/// What a run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub outcome: Outcome,
    pub desired: Vec<LoginIpRange>,
    pub plan: Option<Plan>,
    pub deploy_id: Option<DeployId>,
    pub deploy_status: Option<String>,
    /// Every failure message Salesforce gave (component failures included).
    pub failures: Vec<String>,
    pub error: Option<String>,
    pub duration_ms: u128,
    /// Who changed the drifted profiles, when Salesforce's audit trail says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<AttributionResult>,
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Durable record of a submitted deploy, written before polling starts so that a restarted
/// process resumes polling instead of deploying again (SPEC §5.5).
pub trait DeployJournal: Send + Sync {
    fn deploy_submitted<'a>(
        &'a self,
        id: &'a DeployId,
        check_only: bool,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// For one-shot commands that keep no records (`plan`, `demo`).
pub struct NoJournal;

impl DeployJournal for NoJournal {
    fn deploy_submitted<'a>(
        &'a self,
        _: &'a DeployId,
        _: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

impl RunReport {
    fn empty() -> Self {
        Self {
            outcome: Outcome::Failed,
            desired: Vec::new(),
            plan: None,
            deploy_id: None,
            deploy_status: None,
            failures: Vec::new(),
            error: None,
            duration_ms: 0,
            attribution: None,
        }
    }
}

/// One reconcile against one org.
pub struct Run<'a> {
    pub client: &'a MetadataClient,
    pub sources: &'a Sources,
    pub settings: &'a RunSettings,
    pub profiles: &'a [ProfileName],
    pub observe: &'a (dyn Fn(&RunEvent<'_>) + Send + Sync),
    pub journal: &'a dyn DeployJournal,
}

impl Run<'_> {
    pub async fn execute(&self) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::empty();
        if let Err(failure) = self.steps(&mut report).await {
            report.outcome = failure.outcome;
            report.error = Some(failure.message);
        }
        report.duration_ms = started.elapsed().as_millis();
        report
    }

    /// Picks up a deploy a previous process submitted but never saw finish: poll it, then
    /// verify against the current desired ranges. Nothing is deployed again.
    pub async fn resume(&self, id: DeployId, check_only: bool) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::empty();
        report.deploy_id = Some(id.clone());
        let result = async {
            let sources = self.sources.resolve().await.map_err(Failure::failed)?;
            report.desired = desired_ranges(&sources);
            self.finish_deploy(&mut report, id, check_only).await
        }
        .await;
        if let Err(failure) = result {
            report.outcome = failure.outcome;
            report.error = Some(failure.message);
        }
        report.duration_ms = started.elapsed().as_millis();
        report
    }

    /// Steps 1–3 only: the desired ranges and the plan, nothing deployed (`ipguard plan`).
    pub async fn plan(&self) -> Result<(Vec<LoginIpRange>, Plan), (Outcome, String)> {
        let to_pair = |f: Failure| (f.outcome, f.message);
        let sources = self
            .sources
            .resolve()
            .await
            .map_err(|e| to_pair(Failure::failed(e)))?;
        (self.observe)(&RunEvent::Sources(&sources));
        let desired = desired_ranges(&sources);
        (self.observe)(&RunEvent::Desired(&desired));
        let plan = self.read_and_plan(&desired, true).await.map_err(to_pair)?;
        Ok((desired, plan))
    }

    async fn steps(&self, report: &mut RunReport) -> Result<(), Failure> {
        // 1. desired ranges — never from an empty or stale source
        let sources = self.sources.resolve().await.map_err(Failure::failed)?;
        (self.observe)(&RunEvent::Sources(&sources));
        report.desired = desired_ranges(&sources);
        (self.observe)(&RunEvent::Desired(&report.desired));

        // 2–3. read and plan
        let plan = self.read_and_plan(&report.desired, true).await?;
        report.plan = Some(plan.clone());
        if !plan.drift {
            report.outcome = Outcome::InSync;
            return Ok(());
        }
        if let Some(settings) = &self.settings.attribution {
            let drifted: Vec<ProfileName> = plan.drifted().map(|p| p.name.clone()).collect();
            let since = attribution::window_start(chrono::Utc::now(), settings.window);
            report.attribution = Some(
                attribution::attribute(
                    self.client,
                    &drifted,
                    since,
                    &settings.integration_username,
                    &settings.matchers,
                )
                .await,
            );
        }

        // 4. one deploy for every drifted profile, each file the full target list
        let files: Vec<(ProfileName, Vec<LoginIpRange>)> = plan
            .drifted()
            .map(|p| (p.name.clone(), p.target.clone()))
            .collect();
        let zip = deploy_zip(&files, self.client.api_version()).map_err(Failure::failed)?;
        let check_only = self.settings.check_only;
        let id = self
            .client
            .deploy(&zip, check_only)
            .await
            .map_err(Failure::salesforce)?;
        report.deploy_id = Some(id.clone());
        if let Err(e) = self.journal.deploy_submitted(&id, check_only).await {
            // The deploy is already on its way; keep polling it, but say the record is missing.
            tracing::error!(deploy_id = %id, error = %e, "could not record the submitted deploy");
        }
        (self.observe)(&RunEvent::DeployStarted {
            id: &id,
            check_only,
        });
        self.finish_deploy(report, id, check_only).await
    }

    /// Steps 5–6: poll the deploy to its end, then verify by reading back.
    async fn finish_deploy(
        &self,
        report: &mut RunReport,
        id: DeployId,
        check_only: bool,
    ) -> Result<(), Failure> {
        // 5. poll until done or the window closes
        let result = self.poll(&id).await?;
        report.deploy_status = Some(result.status.to_string());
        if result.status != DeployStatus::Succeeded {
            report.failures = result.failure_messages();
            let detail = if report.failures.is_empty() {
                String::new()
            } else {
                format!(": {}", report.failures.join("; "))
            };
            return Err(Failure {
                outcome: Outcome::Failed,
                message: format!("deploy {id} ended {}{detail}", result.status),
            });
        }
        if check_only {
            report.outcome = Outcome::Planned;
            return Ok(());
        }

        // 6. verify by reading back
        let after = self.read_and_plan(&report.desired, false).await?;
        (self.observe)(&RunEvent::Verified(&after));
        if after.drift {
            let names: Vec<&str> = after.drifted().map(|p| p.name.as_str()).collect();
            return Err(Failure {
                outcome: Outcome::Failed,
                message: format!(
                    "verify_mismatch: deploy {id} succeeded but {} still differ",
                    names.join(", ")
                ),
            });
        }
        report.outcome = Outcome::Remediated;
        Ok(())
    }

    async fn read_and_plan(
        &self,
        desired: &[LoginIpRange],
        announce: bool,
    ) -> Result<Plan, Failure> {
        let records = self
            .client
            .read_profiles(self.profiles)
            .await
            .map_err(Failure::salesforce)?;
        if announce {
            (self.observe)(&RunEvent::Read(&records));
        }
        let mut plans = Vec::with_capacity(self.profiles.len());
        for name in self.profiles {
            let record = records
                .iter()
                .find(|r| r.full_name == name.as_str())
                .ok_or_else(|| Failure {
                    outcome: Outcome::Failed,
                    message: format!(
                        "profile `{name}` was not found: IPGUARD_PROFILES takes full names exactly as \
                         listMetadata returns them (e.g. `Custom%3A Integration`); `ipguard check` lists them"
                    ),
                })?;
            plans.push(plan_profile(
                name.clone(),
                &record.ranges,
                desired,
                self.settings.policy,
            ));
        }
        let plan = Plan::new(self.settings.policy, plans);
        if announce {
            (self.observe)(&RunEvent::Planned(&plan));
        }
        Ok(plan)
    }

    async fn poll(&self, id: &DeployId) -> Result<DeployResult, Failure> {
        let deadline = Instant::now() + self.settings.deploy_timeout;
        let mut delays = self.settings.poll_delays();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure {
                    outcome: Outcome::Unknown,
                    message: format!(
                        "deploy {id} was still running when the {} poll window closed; it will be checked again",
                        humantime::format_duration(self.settings.deploy_timeout)
                    ),
                });
            }
            let delay = delays.next().unwrap_or(self.settings.poll_max);
            tokio::time::sleep(delay.min(deadline - now)).await;
            match self.client.check_deploy_status(id).await {
                Ok(result) => {
                    (self.observe)(&RunEvent::DeployProgress(&result));
                    if result.done {
                        return Ok(result);
                    }
                }
                Err(e) if e.is_ip_restricted() => return Err(Failure::salesforce(e)),
                // The deploy may still complete: keep polling until the window closes.
                Err(e) => tracing::warn!(deploy_id = %id, error = %e, "checkDeployStatus failed"),
            }
        }
    }
}

struct Failure {
    outcome: Outcome,
    message: String,
}

impl Failure {
    fn failed(e: impl std::fmt::Display) -> Self {
        Self {
            outcome: Outcome::Failed,
            message: e.to_string(),
        }
    }

    fn salesforce(e: SalesforceError) -> Self {
        Self {
            outcome: if e.is_ip_restricted() {
                Outcome::LockedOut
            } else {
                Outcome::Failed
            },
            message: e.to_string(),
        }
    }
}
