//! Everything the simulated org remembers: profiles and their ranges, sessions, deploy jobs,
//! the call log, the fault knobs and the Heroku space. One mutex guards it all; every access
//! first moves deploy jobs along the clock, so a deploy finishes (and applies) on time even
//! when nobody polls it — as a real org would.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use jsonwebtoken::DecodingKey;

use super::access::{
    AssignmentRecord, EntityAccessRecord, GroupRecord, PermissionSetRecord, UserRecord,
};
use super::deploy::{self, Change, DeployOptions, Evaluation, Package};
use super::side_doors::{ConnectedAppRecord, EcaRecord};
use super::{
    AuditEntry, Call, DeployOutcome, DeployRecord, FailureKind, Faults, SimConfig, SimHeroku, ids,
};
use ipguard_wire::ranges::LoginIpRange;

pub(crate) struct Shared {
    state: Mutex<SimState>,
}

impl Shared {
    pub fn new(state: SimState) -> Self {
        Self {
            state: Mutex::new(state),
        }
    }

    /// The state, with deploy jobs advanced to now. A panic elsewhere never wedges the sim.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        guard.advance(Instant::now());
        guard
    }
}

/// Who last changed a profile (for listMetadata's lastModifiedBy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Actor {
    Admin,
    Integration,
}

pub(crate) struct ProfileState {
    pub full_name: String,
    pub id: String,
    /// The profile-owned PermissionSet (`IsOwnedByProfile = true`, `ProfileId` = `id`): where
    /// a profile's app grants live as SetupEntityAccess rows (docs/sim.md, issue16 facts 1a/1d).
    pub permission_set_id: String,
    pub ranges: Vec<LoginIpRange>,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub last_modified_by: Actor,
}

impl ProfileState {
    /// A profile with fresh ids (`00e…` and its permission set's `0PS…`).
    pub fn new(
        full_name: &str,
        ranges: Vec<LoginIpRange>,
        created: DateTime<Utc>,
        actor: Actor,
    ) -> Self {
        Self {
            full_name: full_name.to_owned(),
            id: ids::mint("00e"),
            permission_set_id: ids::mint("0PS"),
            ranges,
            created,
            last_modified: created,
            last_modified_by: actor,
        }
    }
}

pub(crate) struct Session {
    pub metadata_calls: u32,
}

pub(crate) enum Phase {
    Pending,
    InProgress,
    Done(Evaluation),
}

/// The numbers a DeployResult reports about one job.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeployCounts {
    pub done: bool,
    pub total: usize,
    pub deployed: usize,
    pub errors: usize,
    pub success: bool,
}

pub(crate) struct DeployJob {
    pub id: String,
    pub options: DeployOptions,
    pub package: Package,
    pub created_at: Instant,
    pub created_date: DateTime<Utc>,
    /// When it left the queue (`InProgress`) and when it finished, on the sim's clock.
    pub started_at: Option<Instant>,
    pub finished_at: Option<Instant>,
    pub start_date: Option<DateTime<Utc>>,
    pub completed_date: Option<DateTime<Utc>>,
    pub phase: Phase,
}

impl DeployJob {
    pub fn status(&self) -> &'static str {
        match &self.phase {
            Phase::Pending => "Pending",
            Phase::InProgress => "InProgress",
            Phase::Done(evaluation) => evaluation.status,
        }
    }

    /// What a DeployResult counts at this phase (the samples' numbers for Pending and
    /// InProgress; the evaluation's once done).
    pub fn counts(&self) -> DeployCounts {
        let members = self.package.members.len();
        match &self.phase {
            Phase::Pending => DeployCounts::default(),
            Phase::InProgress => DeployCounts {
                total: members,
                deployed: members / 2,
                ..DeployCounts::default()
            },
            Phase::Done(e) => DeployCounts {
                done: true,
                total: e.components_total,
                deployed: e.components_deployed,
                errors: e.component_errors,
                success: e.status == "Succeeded",
            },
        }
    }

    pub fn last_modified(&self) -> DateTime<Utc> {
        self.completed_date
            .or(self.start_date)
            .unwrap_or(self.created_date)
    }
}

pub(crate) struct SimState {
    pub org_id: String,
    pub client_id: String,
    pub username: String,
    pub user_id: String,
    pub admin_id: String,
    pub decoding_key: DecodingKey,
    pub integration_profile: String,
    pub caller_ip: IpAddr,
    pub production: bool,
    pub pending_for: Duration,
    pub in_progress_for: Duration,
    pub base_url: String,
    pub profiles: Vec<ProfileState>,
    pub sessions: HashMap<String, Session>,
    pub deploys: Vec<DeployJob>,
    pub calls: Vec<Call>,
    pub faults: Faults,
    /// When `faults.outage` was set: the outage lasts from here for its duration.
    pub outage_started: Option<Instant>,
    pub heroku: SimHeroku,
    pub heroku_created: DateTime<Utc>,
    pub heroku_updated: DateTime<Utc>,
    /// The outbound message action (`04k…`) every sent outbound message names.
    pub outbound_action_id: String,
    /// The replayId the next published platform event gets.
    pub next_replay_id: u64,
    /// SetupAuditTrail, oldest first: one entry per change of a profile's login IP ranges and
    /// per changed field of a side door (session settings, an app's policies).
    pub audit: Vec<AuditEntry>,
    /// Whether the integration user has "View Setup and Configuration": needed to query
    /// SetupAuditTrail and the app-access objects (SetupEntityAccess, PermissionSet…); false →
    /// HTTP 403 `INSUFFICIENT_ACCESS`.
    pub audit_readable: bool,
    /// Records per REST query page (Salesforce's default batch is 2000).
    pub query_page_size: usize,
    /// Records still to be served by `nextRecordsUrl` locators.
    pub query_cursors: HashMap<String, Vec<serde_json::Value>>,
    /// SecuritySettings `Security` › `sessionSettings`: field → text (the fields the org has a
    /// value for; readMetadata writes them in `SESSION_SETTINGS_SEQUENCE` order).
    pub session_settings: Vec<(String, String)>,
    /// External Client Apps and their OAuth policies.
    pub external_client_apps: Vec<EcaRecord>,
    /// Legacy connected apps (none by default).
    pub connected_apps: Vec<ConnectedAppRecord>,
    /// Every user: the integration user, the Setup admin and those tests add.
    pub users: Vec<UserRecord>,
    /// Permission sets that are not profile-owned: regular ones and the aggregate permission
    /// set of each permission set group.
    pub permission_sets: Vec<PermissionSetRecord>,
    pub permission_set_groups: Vec<GroupRecord>,
    /// PermissionSetAssignment rows other than a user's profile-owned permission set's.
    pub assignments: Vec<AssignmentRecord>,
    /// SetupEntityAccess rows of apps (ExternalClientApplication, ConnectedApplication).
    pub entity_access: Vec<EntityAccessRecord>,
    /// LoginHistory of the integration user, oldest first: one row per token request.
    pub logins: Vec<LoginRow>,
    /// Whether the integration user may query its LoginHistory (documented: every user may
    /// read their own rows from API v37.0); false → 403 `INSUFFICIENT_ACCESS`.
    pub login_history_readable: bool,
}

/// One LoginHistory row of the integration user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRow {
    pub id: String,
    pub source_ip: IpAddr,
    pub login_time: DateTime<Utc>,
    /// `Success`, or the failure text (a GUESS for the refused cases: see docs/sim.md).
    pub status: String,
}

pub(crate) const INTEGRATION_USER_NAME: &str = "Integration User";
pub(crate) const ADMIN_USER_NAME: &str = "Admin User";
/// The Setup admin's username, who makes every edit that is not a deploy.
pub const ADMIN_USERNAME: &str = "admin@acme-sim.example";
/// Audit trail `Section` of a profile login-IP-range edit (where Setup files profile changes).
pub const AUDIT_SECTION: &str = "Manage Users";
/// Audit trail `Action` of a profile login-IP-range edit. A GUESS: Salesforce does not document
/// it, which is why ipguard matches on Section/Display instead.
pub const AUDIT_ACTION: &str = "profileLoginIpRangeChanged";

impl SimState {
    pub fn new(config: SimConfig, base_url: String) -> Result<Self, String> {
        let decoding_key = super::oauth::decoding_key(&config.certificate_pem)?;
        let org_id = match config.org_id.len() {
            15 => ids::to_18(&config.org_id).ok_or("org id is not 15 alphanumerics")?,
            18 if ids::is_valid_18(&config.org_id) => config.org_id.clone(),
            18 => {
                return Err(format!(
                    "org id `{}` has a wrong checksum suffix (expected `{}`)",
                    config.org_id,
                    config
                        .org_id
                        .get(..15)
                        .and_then(ids::to_18)
                        .unwrap_or_default()
                ));
            }
            _ => {
                return Err(format!(
                    "org id `{}` is not 15 or 18 characters",
                    config.org_id
                ));
            }
        };
        let now = Utc::now();
        let created = now - chrono::Duration::days(400);
        let mut profiles: Vec<ProfileState> = Vec::new();
        for (full_name, ranges) in config.profiles {
            if profiles.iter().any(|p| p.full_name == full_name) {
                return Err(format!("profile `{full_name}` is listed twice"));
            }
            profiles.push(ProfileState::new(&full_name, ranges, created, Actor::Admin));
        }
        if !profiles
            .iter()
            .any(|p| p.full_name == config.integration_profile)
        {
            profiles.push(ProfileState::new(
                &config.integration_profile,
                Vec::new(),
                created,
                Actor::Admin,
            ));
        }
        let user_id = ids::mint("005");
        let admin_id = ids::mint("005");
        let users = vec![
            UserRecord::new(
                &user_id,
                &config.username,
                INTEGRATION_USER_NAME,
                &config.integration_profile,
                true,
            ),
            UserRecord::new(&admin_id, ADMIN_USERNAME, ADMIN_USER_NAME, "Admin", true),
        ];
        let external_client_apps = config
            .external_client_apps
            .iter()
            .map(|(name, relaxation)| EcaRecord::new(name, relaxation))
            .collect();
        let mut state = Self {
            org_id,
            client_id: config.client_id,
            username: config.username,
            user_id,
            admin_id,
            decoding_key,
            integration_profile: config.integration_profile,
            caller_ip: config.caller_ip,
            production: config.production,
            pending_for: config.pending_for,
            in_progress_for: config.in_progress_for,
            base_url,
            profiles,
            sessions: HashMap::new(),
            deploys: Vec::new(),
            calls: Vec::new(),
            faults: Faults::default(),
            outage_started: None,
            heroku: config.heroku,
            heroku_created: created,
            heroku_updated: created,
            outbound_action_id: ids::mint("04k"),
            next_replay_id: 1,
            audit: Vec::new(),
            audit_readable: true,
            query_page_size: 2000,
            query_cursors: HashMap::new(),
            session_settings: super::side_doors::default_session_settings(
                config.enforce_ip_ranges_every_request,
            ),
            external_client_apps,
            connected_apps: Vec::new(),
            users,
            permission_sets: Vec::new(),
            permission_set_groups: Vec::new(),
            assignments: Vec::new(),
            entity_access: Vec::new(),
            logins: Vec::new(),
            login_history_readable: true,
        };
        // The default org: the integration user's profile is granted the app (a profile grant).
        let default_app = state
            .external_client_apps
            .iter()
            .find(|a| a.name == super::DEFAULT_APP)
            .or(state.external_client_apps.first())
            .map(|a| a.name.clone());
        if let Some(app) = default_app {
            let profile = state.integration_profile.clone();
            state.grant_app_to_profile(&app, &profile);
        }
        Ok(state)
    }

    pub fn profile(&self, full_name: &str) -> Option<&ProfileState> {
        self.profiles.iter().find(|p| p.full_name == full_name)
    }

    /// Replaces a profile's whole list (REPLACE semantics), creating the profile if needed.
    /// A real change (as a set of (start, end)) is written to the audit trail as `actor`.
    pub fn set_ranges(&mut self, full_name: &str, ranges: Vec<LoginIpRange>, actor: Actor) {
        self.set_ranges_at(full_name, ranges, actor, Utc::now());
    }

    /// [`SimState::set_ranges`] as of `at` (a deploy applies when it finished).
    pub fn set_ranges_at(
        &mut self,
        full_name: &str,
        ranges: Vec<LoginIpRange>,
        actor: Actor,
        at: DateTime<Utc>,
    ) {
        // The audit trail keeps milliseconds, as Salesforce's CreatedDate does.
        let now = at.trunc_subsecs(3);
        let before = self
            .profile(full_name)
            .map(|p| p.ranges.clone())
            .unwrap_or_default();
        let key_set = |r: &[LoginIpRange]| {
            r.iter()
                .map(LoginIpRange::key)
                .collect::<std::collections::BTreeSet<_>>()
        };
        if key_set(&before) != key_set(&ranges) {
            self.audit_range_change(full_name, &before, &ranges, actor, now);
        }
        match self.profiles.iter_mut().find(|p| p.full_name == full_name) {
            Some(profile) => {
                profile.ranges = ranges;
                profile.last_modified = now;
                profile.last_modified_by = actor;
            }
            None => self
                .profiles
                .push(ProfileState::new(full_name, ranges, now, actor)),
        }
    }

    /// What Setup's audit trail records for a login-IP-range change. The Display wording is
    /// a plausible GUESS in the style of Setup's entries; it names the profile by its label.
    fn audit_range_change(
        &mut self,
        full_name: &str,
        before: &[LoginIpRange],
        after: &[LoginIpRange],
        actor: Actor,
        at: DateTime<Utc>,
    ) {
        let list = |ranges: &[LoginIpRange]| {
            if ranges.is_empty() {
                "(none)".to_owned()
            } else {
                ranges
                    .iter()
                    .map(|r| format!("{} - {}", r.start(), r.end()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let label = ipguard_wire::profile::standard_label(full_name)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                percent_encoding::percent_decode_str(full_name)
                    .decode_utf8_lossy()
                    .into_owned()
            });
        let display = format!(
            "Changed login IP range for profile {label} from {} to {}",
            list(before),
            list(after)
        );
        self.audit_entry(AUDIT_ACTION, AUDIT_SECTION, display, actor, at);
    }

    /// Appends one SetupAuditTrail entry made by `actor` at `at` (milliseconds kept).
    pub fn audit_entry(
        &mut self,
        action: &str,
        section: &str,
        display: String,
        actor: Actor,
        at: DateTime<Utc>,
    ) {
        let (created_by_id, username) = match actor {
            Actor::Admin => (self.admin_id.clone(), ADMIN_USERNAME.to_owned()),
            Actor::Integration => (self.user_id.clone(), self.username.clone()),
        };
        self.audit.push(AuditEntry {
            id: ids::mint("0Ym"),
            action: action.to_owned(),
            section: section.to_owned(),
            display,
            created_date: at.trunc_subsecs(3),
            created_by_id,
            username,
        });
    }

    /// Spends one call of a session: it must exist, and with `session_expires_after_calls`
    /// it dies after N calls (SOAP and REST alike).
    pub fn use_session(&mut self, token: Option<&str>) -> bool {
        let limit = self.faults.session_expires_after_calls;
        let Some(token) = token else {
            return false;
        };
        let Some(entry) = self.sessions.get_mut(token) else {
            return false;
        };
        if limit.is_some_and(|n| entry.metadata_calls >= n) {
            self.sessions.remove(token);
            return false;
        }
        entry.metadata_calls += 1;
        true
    }

    /// Writes the LoginHistory row of one token request of the integration user.
    pub fn record_login(&mut self, status: &str) {
        self.logins.push(LoginRow {
            id: ids::mint("0Ya"),
            source_ip: self.caller_ip,
            login_time: Utc::now(),
            status: status.to_owned(),
        });
    }

    pub fn set_heroku(&mut self, heroku: SimHeroku) {
        if heroku != self.heroku {
            self.heroku_updated = Utc::now();
        }
        self.heroku = heroku;
    }

    pub fn record(&mut self, operation: &str, outcome: &str) {
        self.calls.push(Call {
            operation: operation.to_owned(),
            outcome: outcome.to_owned(),
        });
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.outage_started = faults.outage.map(|_| Instant::now());
        self.faults = faults;
    }

    /// The next injected failure for a Salesforce call. A token call (`soap == false`) only
    /// takes HTTP-level failures; a SOAP-only failure at the head waits for a SOAP call.
    /// A running outage fails the call without touching the queue.
    pub fn take_failure(&mut self, soap: bool) -> Option<FailureKind> {
        let http_level = |kind| matches!(kind, FailureKind::Http500 | FailureKind::Http503);
        if let (Some(outage), Some(started)) = (self.faults.outage, self.outage_started)
            && started.elapsed() < outage.duration
            && (soap || http_level(outage.kind))
        {
            return Some(outage.kind);
        }
        let first = *self.faults.next_failures.first()?;
        (soap || http_level(first)).then(|| self.faults.next_failures.remove(0))
    }

    /// The user id part of the `id` URL and the createdBy of deploys (15-character form).
    pub fn user_id15(&self) -> &str {
        &self.user_id[..15]
    }

    pub fn user_name(&self, actor: Actor) -> (&str, &str) {
        match actor {
            Actor::Admin => (&self.admin_id, ADMIN_USER_NAME),
            Actor::Integration => (&self.user_id, INTEGRATION_USER_NAME),
        }
    }

    /// Whether the integration user may log in from `caller_ip` under its profile's ranges.
    pub fn caller_allowed(&self) -> bool {
        match self.profile(&self.integration_profile) {
            Some(profile) if !profile.ranges.is_empty() => {
                profile.ranges.iter().any(|r| r.contains(self.caller_ip))
            }
            _ => true,
        }
    }

    pub fn new_session(&mut self) -> String {
        let token = format!("{}!AQ{}", &self.org_id[..15], ids::token_secret(94));
        self.sessions
            .insert(token.clone(), Session { metadata_calls: 0 });
        token
    }

    /// Accepts a deploy: the zip is read now, validated against the org when it finishes.
    pub fn enqueue_deploy(&mut self, options: DeployOptions, package: Package) -> String {
        let id = ids::mint("0Af");
        self.deploys.push(DeployJob {
            id: id.clone(),
            options,
            package,
            created_at: Instant::now(),
            created_date: Utc::now(),
            started_at: None,
            finished_at: None,
            start_date: None,
            completed_date: None,
            phase: Phase::Pending,
        });
        id
    }

    /// Moves deploy jobs along the clock. An org runs one deploy at a time: jobs leave
    /// `Pending` oldest first, each once it has waited `pending_for` AND the one before it has
    /// finished (a `Stuck` job holds the queue). A finishing job is evaluated against the
    /// profiles as they are and applied if it succeeds, stamped (completedDate, the audit
    /// trail's CreatedDate, the profile's lastModifiedDate) with the moment it finished, not
    /// the moment a later request noticed.
    pub fn advance(&mut self, now: Instant) {
        let pending_for = self.pending_for;
        let in_progress_for = self.in_progress_for;
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        // When the job ahead finished (the queue is free from then on).
        let mut free_at: Option<Instant> = None;
        for index in 0..self.deploys.len() {
            let job = &mut self.deploys[index];
            if let Some(finished) = job.finished_at {
                free_at = free_at.max(Some(finished));
                continue;
            }
            let start = match job.started_at {
                Some(start) => start,
                None => {
                    let start =
                        (job.created_at + pending_for).max(free_at.unwrap_or(job.created_at));
                    if now < start {
                        return; // still Pending, and everything behind it too
                    }
                    job.started_at = Some(start);
                    job.start_date = Some(
                        job.created_date
                            + to_chrono(start.saturating_duration_since(job.created_at)),
                    );
                    job.phase = Phase::InProgress;
                    start
                }
            };
            let end = start + in_progress_for;
            if now < end || self.faults.deploy_outcome == DeployOutcome::Stuck {
                return; // InProgress holds the queue
            }
            let completed =
                job.created_date + to_chrono(end.saturating_duration_since(job.created_at));
            let job = &self.deploys[index];
            let evaluation = deploy::evaluate(
                &job.package,
                &job.options,
                &*self,
                &self.faults.deploy_outcome,
            );
            let job = &mut self.deploys[index];
            job.completed_date = Some(completed);
            job.finished_at = Some(end);
            let apply = evaluation.apply.clone();
            job.phase = Phase::Done(evaluation);
            for change in apply {
                self.apply_change(change, completed);
            }
            free_at = Some(end);
        }
    }

    /// Applies what a finished deploy changes, as the integration user at `at`.
    fn apply_change(&mut self, change: Change, at: DateTime<Utc>) {
        let actor = Actor::Integration;
        match change {
            Change::Ranges(name, ranges) => self.set_ranges_at(&name, ranges, actor, at),
            Change::SessionSettings(fields) => self.update_session_settings(&fields, actor, at),
            Change::EcaPolicies(app, fields) => self.replace_eca_policies(&app, fields, actor, at),
            Change::ConnectedApp(app, fields) => {
                self.replace_connected_app(&app, fields, actor, at);
            }
        }
    }

    pub fn deploy(&self, id: &str) -> Option<&DeployJob> {
        // Salesforce accepts the 15- and the 18-character form of an id.
        self.deploys
            .iter()
            .find(|j| j.id == id || (id.len() == 15 && j.id.starts_with(id)))
    }

    pub fn deploy_records(&self) -> Vec<DeployRecord> {
        self.deploys
            .iter()
            .map(|job| DeployRecord {
                id: job.id.clone(),
                check_only: job.options.check_only,
                rollback_on_error: job.options.rollback_on_error,
                test_level: job.options.test_level.clone(),
                profiles: job.package.profile_members(),
                files: job.package.files.clone(),
                status: job.status().to_owned(),
                problems: match &job.phase {
                    Phase::Done(evaluation) => evaluation
                        .failures
                        .iter()
                        .filter_map(|m| m.problem.clone())
                        .collect(),
                    _ => Vec::new(),
                },
                completed_at: job.completed_date,
            })
            .collect()
    }
}
