//! One reconcile of one org (docs/contract.md §5): sources → read → plan → deploy → poll → verify.

use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Serialize;

use super::attribution::{self, AttributionResult, DoorSubject, Matchers};
use super::doors::{self, SideDoors};
use super::guarded::{Grant, Guarded, ProfileSelection};
use super::interlock;
use super::plan::{Ownership, Plan, PolicyRules, plan_profile};
use crate::heroku::HerokuClient;
pub use crate::outcome::Outcome;
use crate::ranges::{LoginIpRange, Source, desired_ranges};
use crate::salesforce::client::{MetadataClient, SalesforceError};
use crate::salesforce::deploy_poll::{self, PollSchedule, PollStop};
use crate::salesforce::metadata::{DeployId, DeployResult, DeployStatus};
use crate::salesforce::package::{Component, package_zip};
use crate::salesforce::profile::ProfileName;

/// Where the allowed IPs come from.
pub struct Sources {
    pub static_ips: Vec<IpNet>,
    pub heroku: Option<HerokuClient>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Heroku(#[from] crate::heroku::HerokuError),
    #[error(transparent)]
    Nat(#[from] crate::heroku::NatUnusable),
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
            let ips = nat.usable_sources(heroku.space())?;
            let label = space_label(heroku.space());
            sources.extend(ips.iter().map(|ip| Source {
                net: IpNet::from(*ip),
                label: label.clone(),
            }));
        }
        if sources.is_empty() {
            return Err(SourceError::Empty);
        }
        Ok(sources)
    }
}

/// The label of the space's sources (and so of the ranges made from them).
pub fn space_label(space: &str) -> String {
    format!("space {space}")
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
    /// Which policy applies to which profile.
    pub rules: PolicyRules,
    /// `apply --allow-self-lockout`: the one deliberate override of the interlock.
    pub allow_self_lockout: bool,
    /// The integration user (`SALESFORCE_USERNAME`): whose profile and latest login the
    /// interlock reads.
    pub integration_username: Option<String>,
    /// Send `checkOnly` deploys: Salesforce validates, nothing changes (dry-run).
    pub check_only: bool,
    /// Poll window before the run ends `unknown`.
    pub deploy_timeout: Duration,
    /// When the deploy is polled.
    pub poll: PollSchedule,
    /// `None`: don't query the audit trail.
    pub attribution: Option<AttributionSettings>,
}

impl RunSettings {
    pub fn new(rules: PolicyRules, check_only: bool, deploy_timeout: Duration) -> Self {
        Self {
            rules,
            allow_self_lockout: false,
            integration_username: None,
            check_only,
            deploy_timeout,
            poll: PollSchedule::default(),
            attribution: None,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub outcome: Outcome,
    /// The source set the desired ranges came from.
    #[serde(skip)]
    pub sources: Vec<Source>,
    pub desired: Vec<LoginIpRange>,
    /// The profiles this run guarded: `IPGUARD_PROFILES` with its apps expanded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guarded: Vec<ProfileName>,
    /// Why each app-granted profile was guarded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    pub plan: Option<Plan>,
    /// The plan of the read-back after a deploy (every profile in sync when `remediated`).
    #[serde(skip)]
    pub verified: Option<Plan>,
    pub deploy_id: Option<DeployId>,
    pub deploy_status: Option<String>,
    /// From submitting the deploy to seeing it done (a deploy this run submitted).
    #[serde(skip)]
    pub deploy_elapsed: Option<Duration>,
    /// Every failure message Salesforce gave (component failures included).
    pub failures: Vec<String>,
    pub error: Option<String>,
    pub duration_ms: u128,
    /// Who changed the drifted profiles, when Salesforce's audit trail says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<AttributionResult>,
    /// The deploy can no longer tell its end (Salesforce does not know its id, or it outlived
    /// the deploy timeout): the run ends `unknown` and the deploy is never resumed again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deploy_closed: bool,
}

impl RunReport {
    /// A report with nothing done yet (`failed` until a step says otherwise).
    pub fn empty() -> Self {
        Self {
            outcome: Outcome::Failed,
            sources: Vec::new(),
            desired: Vec::new(),
            guarded: Vec::new(),
            grants: Vec::new(),
            plan: None,
            verified: None,
            deploy_id: None,
            deploy_status: None,
            deploy_elapsed: None,
            failures: Vec::new(),
            error: None,
            duration_ms: 0,
            attribution: None,
            deploy_closed: false,
        }
    }

    /// Records what the run guards (`guarded`, `grants`).
    fn guard(&mut self, guarded: Guarded) {
        self.guarded = guarded.profiles;
        self.grants = guarded.grants;
    }

    /// Ends the report with `failure`.
    pub fn fail(&mut self, failure: Failure) {
        self.outcome = failure.outcome;
        self.error = Some(failure.message);
        self.deploy_closed = failure.closes_deploy;
    }
}

/// What a run found before deploying: its desired ranges, the plan and (with drift) who
/// changed what. `report` is the record so far; with no drift it is already final (`in_sync`).
pub struct Prepared {
    pub report: RunReport,
    started: Instant,
    /// What the plan took as ipguard's own: the verify step plans with the same.
    owned: Ownership,
}

impl Prepared {
    /// Drift: a deploy is needed.
    pub fn needs_deploy(&self) -> bool {
        self.report.plan.as_ref().is_some_and(|p| p.drift)
    }

    /// The report of a run that ends here (in sync, or stopped before deploying).
    pub fn into_report(mut self) -> RunReport {
        self.report.duration_ms = self.started.elapsed().as_millis();
        self.report
    }
}

/// One reconcile against one org, as typed steps (docs/contract.md §5):
/// [`Run::prepare`] → [`Prepared`] (sources, read, plan, attribution), [`Run::submit`] →
/// [`Submitted`] (the one deploy), [`Run::finish`] → [`RunReport`] (poll, read back). Each
/// step returns what it found; the caller sits between the steps and shows or records it:
/// the service and `apply` record the deploy id before polling and confirm their lease before
/// the deploy (`reconcile::drive`); [`Run::execute`] chains the steps with no records (tests).
pub struct Run<'a> {
    pub client: &'a MetadataClient,
    pub sources: &'a Sources,
    pub settings: &'a RunSettings,
    /// `IPGUARD_PROFILES`, expanded at every run.
    pub profiles: &'a ProfileSelection,
    /// `IPGUARD_SIDE_DOORS`.
    pub doors: &'a SideDoors,
}

/// What a caller sees of a deploy while it is polled (`apply --progress` prints it).
pub type OnPoll<'a> = &'a mut (dyn FnMut(&DeployResult) + Send);

impl Run<'_> {
    /// The whole run with nothing recorded between the steps.
    pub async fn execute(&self) -> RunReport {
        let prepared = match self.prepare(&Ownership::default()).await {
            Ok(p) if p.needs_deploy() => p,
            Ok(p) => return p.into_report(),
            Err(report) => return report,
        };
        match self.submit(prepared).await {
            Ok(submitted) => self.finish(submitted, &mut |_| {}).await,
            Err(report) => report,
        }
    }

    /// Steps 1–3 and attribution: desired ranges (never from an empty or stale source), the
    /// profiles read, the plan. `owned` is what the store recorded as ipguard's own (empty for
    /// a fresh store). `Err` is a finished report (`failed` or `locked_out`).
    pub async fn prepare(&self, owned: &Ownership) -> Result<Prepared, RunReport> {
        let started = Instant::now();
        let mut report = RunReport::empty();
        let result = async {
            let (sources, desired) = self.desired().await?;
            report.sources = sources;
            report.desired = desired;
            report.guard(self.guarded().await?);
            let plan = self
                .read_and_plan(&report.desired, &report.guarded, owned)
                .await?;
            report.outcome = Outcome::InSync;
            report.plan = Some(plan);
            Ok::<_, Failure>(())
        }
        .await;
        if let Err(failure) = result {
            report.fail(failure);
            report.duration_ms = started.elapsed().as_millis();
            return Err(report);
        }
        let drifted: Vec<ProfileName> = report
            .plan
            .iter()
            .flat_map(|p| p.drifted())
            .map(|p| p.name.clone())
            .collect();
        let doors: Vec<DoorSubject<'_>> = report
            .plan
            .iter()
            .flat_map(|p| p.drifted_doors())
            .map(|d| DoorSubject {
                door: d.door,
                app: &self.doors.app,
            })
            .collect();
        if let (Some(settings), false) = (
            &self.settings.attribution,
            drifted.is_empty() && doors.is_empty(),
        ) {
            let since = attribution::window_start(chrono::Utc::now(), settings.window);
            report.attribution = Some(
                attribution::attribute(
                    self.client,
                    &drifted,
                    &doors,
                    since,
                    &settings.integration_username,
                    &settings.matchers,
                )
                .await,
            );
        }
        Ok(Prepared {
            report,
            started,
            owned: owned.clone(),
        })
    }

    /// Step 4: one deploy for every drifted profile, each file the full target list.
    pub async fn submit(&self, prepared: Prepared) -> Result<Submitted, RunReport> {
        let Prepared {
            mut report,
            started,
            owned,
        } = prepared;
        let check_only = self.settings.check_only;
        let submitted = async {
            let plan = report
                .plan
                .as_ref()
                .ok_or_else(|| Failure::failed("no plan"))?;
            // A check-only deploy changes nothing, so it cannot lock anyone out.
            if !check_only {
                self.interlock(&report.sources, &report.guarded, plan)
                    .await?;
            }
            let mut files: Vec<Component> = plan
                .drifted()
                .map(|p| Component::profile(&p.name, &p.target))
                .collect();
            files.extend(plan.drifted_doors().filter_map(|d| d.fix.clone()));
            let zip = package_zip(&files, self.client.api_version()).map_err(Failure::failed)?;
            self.client
                .deploy(&zip, check_only)
                .await
                .map_err(Failure::salesforce)
        }
        .await;
        match submitted {
            Ok(id) => {
                report.deploy_id = Some(id.clone());
                Ok(Submitted {
                    report,
                    started,
                    id,
                    check_only,
                    submitted_at: Instant::now(),
                    deadline: Instant::now() + self.settings.deploy_timeout,
                    resumed: false,
                    owned,
                })
            }
            Err(failure) => {
                report.fail(failure);
                report.duration_ms = started.elapsed().as_millis();
                Err(report)
            }
        }
    }

    /// A deploy a previous process submitted at `submitted_at` and never saw finish: it is
    /// polled (at least once, however old) and verified; nothing is deployed again. Its poll
    /// window runs from `submitted_at`, so a deploy older than the deploy timeout is closed
    /// after one look.
    pub async fn resume(
        &self,
        id: DeployId,
        check_only: bool,
        submitted_at: chrono::DateTime<chrono::Utc>,
        owned: &Ownership,
        on_poll: OnPoll<'_>,
    ) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::empty();
        report.deploy_id = Some(id.clone());
        let known = match self.sources.resolve().await {
            Ok(sources) => {
                report.desired = desired_ranges(&sources);
                report.sources = sources;
                self.guarded().await.map(|g| report.guard(g))
            }
            Err(e) => Err(Failure::failed(e)),
        };
        if let Err(failure) = known {
            report.fail(failure);
            report.duration_ms = started.elapsed().as_millis();
            return report;
        }
        let age = (chrono::Utc::now() - submitted_at)
            .to_std()
            .unwrap_or_default();
        let left = self.settings.deploy_timeout.saturating_sub(age);
        self.finish(
            Submitted {
                report,
                started,
                id,
                check_only,
                submitted_at: started,
                deadline: Instant::now() + left,
                resumed: true,
                owned: owned.clone(),
            },
            on_poll,
        )
        .await
    }

    /// Steps 5–6: poll the deploy to its end (telling `on_poll` each status), then verify by
    /// reading back.
    pub async fn finish(&self, submitted: Submitted, on_poll: OnPoll<'_>) -> RunReport {
        let Submitted {
            mut report,
            started,
            id,
            check_only,
            submitted_at,
            deadline,
            resumed,
            owned,
        } = submitted;
        let window = PollWindow {
            submitted_at,
            deadline,
            resumed,
        };
        if let Err(failure) = self
            .poll_and_verify(&mut report, &id, check_only, window, &owned, on_poll)
            .await
        {
            report.fail(failure);
        }
        report.duration_ms = started.elapsed().as_millis();
        report
    }

    /// Steps 1–3 only: the desired ranges and the plan, nothing deployed (`ipguard plan`).
    pub async fn plan(
        &self,
        owned: &Ownership,
    ) -> Result<(Vec<LoginIpRange>, Plan), (Outcome, String)> {
        let to_pair = |f: Failure| (f.outcome, f.message);
        let (_, desired) = self.desired().await.map_err(to_pair)?;
        let guarded = self.guarded().await.map_err(to_pair)?;
        let plan = self
            .read_and_plan(&desired, &guarded.profiles, owned)
            .await
            .map_err(to_pair)?;
        Ok((desired, plan))
    }

    /// `IPGUARD_PROFILES` expanded: the profiles this run guards and why.
    async fn guarded(&self) -> Result<Guarded, Failure> {
        let guarded = self
            .profiles
            .resolve(self.client)
            .await
            .map_err(|e| Failure::reading(e.salesforce(), &e))?;
        if guarded.profiles.is_empty() && self.doors.guarded.is_empty() {
            return Err(Failure::failed(
                "IPGUARD_PROFILES guards no profile at this run (every app-granted profile is \
                 excluded or no user can use the app) and no side door is guarded",
            ));
        }
        Ok(guarded)
    }

    async fn desired(&self) -> Result<(Vec<Source>, Vec<LoginIpRange>), Failure> {
        let sources = self.sources.resolve().await.map_err(Failure::failed)?;
        let desired = desired_ranges(&sources);
        Ok((sources, desired))
    }

    /// docs/contract.md §5 rule 10: refuses a deploy whose target for the integration user's profile would
    /// not admit ipguard's own way in (unless `--allow-self-lockout`).
    async fn interlock(
        &self,
        sources: &[Source],
        guarded: &[ProfileName],
        plan: &Plan,
    ) -> Result<(), Failure> {
        if self.settings.allow_self_lockout {
            tracing::warn!("self-lock-out interlock overridden (--allow-self-lockout)");
            return Ok(());
        }
        let space = self.sources.heroku.as_ref().map(|h| h.space());
        let way_in = interlock::own_way_in(
            self.client,
            self.settings.integration_username.as_deref(),
            guarded,
            interlock::nat_ips(sources, space),
        )
        .await;
        tracing::info!(way_in = %interlock::describe(&way_in), "self-lock-out interlock");
        interlock::judge(&way_in, plan).map_err(Failure::failed)
    }

    async fn poll_and_verify(
        &self,
        report: &mut RunReport,
        id: &DeployId,
        check_only: bool,
        window: PollWindow,
        owned: &Ownership,
        on_poll: OnPoll<'_>,
    ) -> Result<(), Failure> {
        // 5. poll until done or the window closes
        let result = self
            .poll(id, window.deadline, window.resumed, on_poll)
            .await?;
        if !window.resumed {
            report.deploy_elapsed = Some(window.submitted_at.elapsed());
        }
        tracing::info!(deploy_id = %id, status = %result.status, "deploy finished");
        report.deploy_status = Some(result.status.to_string());
        if result.status != DeployStatus::Succeeded {
            report.failures = result.failure_messages();
            let detail = if report.failures.is_empty() {
                String::new()
            } else {
                format!(": {}", report.failures.join("; "))
            };
            return Err(Failure::failed(format!(
                "deploy {id} ended {}{detail}",
                result.status
            )));
        }
        if check_only {
            report.outcome = Outcome::Planned;
            return Ok(());
        }

        // 6. verify by reading back
        let after = self
            .read_and_plan(&report.desired, &report.guarded, owned)
            .await?;
        let drift = after.drift;
        let names: Vec<String> = after
            .drifted()
            .map(|p| p.name.to_string())
            .chain(after.drifted_doors().map(|d| d.door.to_string()))
            .collect();
        report.verified = Some(after);
        if drift {
            return Err(Failure::failed(format!(
                "verify_mismatch: deploy {id} succeeded but {} still differ",
                names.join(", ")
            )));
        }
        report.outcome = Outcome::Remediated;
        Ok(())
    }

    async fn read_and_plan(
        &self,
        desired: &[LoginIpRange],
        profiles: &[ProfileName],
        owned: &Ownership,
    ) -> Result<Plan, Failure> {
        let records = self
            .client
            .read_profiles(profiles)
            .await
            .map_err(Failure::salesforce)?;
        let mut plans = Vec::with_capacity(profiles.len());
        for name in profiles {
            let record = records
                .iter()
                .find(|r| r.full_name == name.as_str())
                .ok_or_else(|| Failure::failed(format!(
                    "profile `{name}` was not found: IPGUARD_PROFILES takes full names exactly as \
                     listMetadata returns them (e.g. `Custom%3A Integration`); `ipguard check` lists them"
                )))?;
            plans.push(plan_profile(
                name.clone(),
                &record.ranges,
                desired,
                &self.settings.rules,
                &owned.of(name),
            ));
        }
        let doors = doors::read_and_plan(self.client, self.doors)
            .await
            .map_err(|e| Failure::reading(e.salesforce(), &e))?;
        Ok(Plan::new(self.settings.rules.default, plans).with_doors(doors))
    }

    /// Polls until the deploy is done. Transient errors keep polling until `deadline`; any
    /// other error means Salesforce cannot tell this deploy's end (e.g. it no longer knows
    /// the id), which closes it. A window that closes on a resumed deploy closes it too; on a
    /// fresh one the run ends `unknown` and the deploy is looked at once more later.
    async fn poll(
        &self,
        id: &DeployId,
        deadline: Instant,
        resumed: bool,
        on_poll: OnPoll<'_>,
    ) -> Result<DeployResult, Failure> {
        match deploy_poll::until_done(self.client, id, &self.settings.poll, deadline, on_poll).await
        {
            Ok(result) => Ok(result),
            Err(PollStop::IpRestricted(e)) => Err(Failure::salesforce(e)),
            Err(PollStop::Refused(e)) => Err(Failure {
                outcome: Outcome::Unknown,
                message: format!(
                    "Salesforce cannot report on deploy {id} ({e}); closed without a result, a fresh run follows"
                ),
                closes_deploy: true,
            }),
            Err(PollStop::StillRunning(_)) => {
                let window = humantime::format_duration(self.settings.deploy_timeout);
                Err(if resumed {
                    Failure {
                        outcome: Outcome::Unknown,
                        message: format!(
                            "deploy {id} was still running {window} after it was submitted; closed without a result, a fresh run follows"
                        ),
                        closes_deploy: true,
                    }
                } else {
                    Failure {
                        outcome: Outcome::Unknown,
                        message: format!(
                            "deploy {id} was still running when the {window} poll window closed; it will be checked again"
                        ),
                        closes_deploy: false,
                    }
                })
            }
        }
    }
}

/// A deploy on its way: what [`Run::finish`] polls.
pub struct Submitted {
    pub report: RunReport,
    started: Instant,
    pub id: DeployId,
    pub check_only: bool,
    submitted_at: Instant,
    deadline: Instant,
    resumed: bool,
    owned: Ownership,
}

/// How long a deploy is polled, and whether this process submitted it.
struct PollWindow {
    submitted_at: Instant,
    deadline: Instant,
    resumed: bool,
}

/// Why a step ended the run.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
    /// See [`RunReport::deploy_closed`].
    pub closes_deploy: bool,
}

impl Failure {
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self {
            outcome: Outcome::Failed,
            message: e.to_string(),
            closes_deploy: false,
        }
    }

    /// A read that failed with `error`, caused by `source` when Salesforce refused it: an IP
    /// restriction is a lock-out, anything else a failure.
    fn reading(source: Option<&SalesforceError>, error: &dyn std::fmt::Display) -> Self {
        Self {
            outcome: if source.is_some_and(SalesforceError::is_ip_restricted) {
                Outcome::LockedOut
            } else {
                Outcome::Failed
            },
            message: error.to_string(),
            closes_deploy: false,
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
            closes_deploy: false,
        }
    }
}
