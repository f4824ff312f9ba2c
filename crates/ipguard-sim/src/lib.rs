//! A simulated Salesforce org: a real HTTP server on 127.0.0.1 that speaks the bytes ipguard
//! talks to — the OAuth 2.0 JWT bearer token endpoint, the Metadata SOAP API (listMetadata,
//! readMetadata, deploy, checkDeployStatus), the REST query API over `SetupAuditTrail` and the
//! Heroku Platform API's space NAT — with knobs for faults, latency, lock-outs and deploy
//! outcomes.
//!
//! Every change of a profile's login IP ranges is written to the audit trail: an admin edit
//! ([`SimOrg::set_login_ip_ranges`], the admin API) as [`ADMIN_USERNAME`], an applied deploy as
//! the integration user.
//!
//! Around the ranges, the org keeps the side doors ipguard closes (Session Settings' "Enforce
//! login IP ranges on every request", each app's IP relaxation: readable, deployable and
//! audited) and who may use the app (profiles, permission sets, groups, assignments and
//! SetupEntityAccess grants, over SOQL). `docs/sim.md` describes both.
//!
//! One base URL serves as login URL, `instance_url` and Heroku API URL at once. Tests start it
//! on port 0 ([`SimOrg::start`]); `ipguard sim` runs it standalone ([`run_standalone`]) with
//! JSON admin endpoints under `/sim/`.
//!
//! The org also *sends*: [`SimOrg::send_outbound_message`] and [`SimOrg::send_platform_events`]
//! post what a real org posts to ipguard after an admin edit, retrying until acknowledged.
//!
//! Responses are built from the real samples in `tests/fixtures/salesforce/` (element names, order and
//! namespaces); where Salesforce's exact text is unknown the sim says something plausible.
//! `docs/sim.md` lists what the sim models, what it refuses and every guess;
//! `tests/conformance/` drives it with jsforce and simple-salesforce (issue 13).

mod access;
mod admin;
mod audit;
pub mod demo;
mod deploy;
mod emitter;
mod heroku;
pub mod ids;
mod oauth;
mod rest;
mod rest_deploy;
mod side_doors;
mod soap;
mod soql;
mod state;
#[cfg(test)]
mod tests;
mod tls;
mod users;

use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};

pub use emitter::{
    EVENT_CHANNEL, EVENT_SIGNING_CERT_NAME, EventClaims, OUTBOUND_NS, SendReport, SendRetry,
};
use ipguard_wire::keygen::KeyMaterial;
use ipguard_wire::ranges::LoginIpRange;
pub use side_doors::{
    CONNECTED_APP_ACTION, CONNECTED_APPS_SECTION, EXTERNAL_CLIENT_APP_ACTION,
    EXTERNAL_CLIENT_APPS_SECTION, SESSION_SETTINGS_ACTION, SESSION_SETTINGS_SECTION,
};
pub use state::{ADMIN_USERNAME, AUDIT_ACTION, AUDIT_SECTION};
use state::{Actor, Shared, SimState};
pub use tls::{TlsError, TlsMaterial};

/// Largest request body accepted (a deploy's base64 zip; Salesforce allows ~50 MB).
const MAX_BODY: usize = 50 * 1024 * 1024;

/// How the simulated org is set up when it starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// 18-character org id (a 15-character one is extended with its checksum).
    pub org_id: String,
    /// Consumer key the JWT `iss` must equal.
    pub client_id: String,
    /// The integration user (JWT `sub`).
    pub username: String,
    /// Certificate registered on the External Client App: verifies the JWT bearer assertion.
    pub certificate_pem: String,
    /// Full name of the integration user's profile, whose login IP ranges gate every login.
    pub integration_profile: String,
    /// The IP the sim believes every caller comes from (the space's NAT IP).
    pub caller_ip: IpAddr,
    /// Initial profiles, verbatim full names (e.g. `Custom%3A Support`), in listMetadata order.
    pub profiles: Vec<(String, Vec<LoginIpRange>)>,
    /// Plays a production org: refuses `testLevel` `NoTestRun`.
    pub production: bool,
    /// A deploy stays `Pending` this long …
    pub pending_for: Duration,
    /// … then `InProgress` this long, then finishes.
    pub in_progress_for: Duration,
    /// The Heroku Private Space whose NAT the Platform API reports.
    pub heroku: SimHeroku,
    /// Key pair that signs platform-event callouts (the Named Credential's certificate);
    /// `None` generates one on first use (RSA generation is slow: tests share one).
    pub event_signing_key: Option<KeyMaterial>,
    /// Session Settings › "Enforce login IP ranges on every request" (SecuritySettings
    /// `Security`, `sessionSettings/enforceIpRangesEveryRequest`).
    pub enforce_ip_ranges_every_request: bool,
    /// External Client Apps: developer name → their OAuth policies' `ipRelaxationPolicyType`
    /// (readable as ExtlClntAppOauthConfigurablePolicies `<name>_oauthPlcy`, the other
    /// policies at their defaults). The integration profile is granted [`DEFAULT_APP`] (else
    /// the first app).
    pub external_client_apps: Vec<(String, String)>,
}

/// The Heroku side: one space, the API token that may read it, and its NAT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimHeroku {
    pub space: String,
    pub api_token: String,
    /// `enabled`, `updating` or `disabled`.
    pub state: String,
    pub sources: Vec<String>,
}

/// Default org id: `00D5g000004FAKE` with its checksum suffix.
pub const DEFAULT_ORG_ID: &str = "00D5g000004FAKEEA4";
pub const DEFAULT_CLIENT_ID: &str =
    "3MVG9SimulatedOrgConsumerKey.ipguard.test.0000000000000000000000000000000000";
pub const DEFAULT_USERNAME: &str = "integration@ipguard.example";
pub const DEFAULT_INTEGRATION_PROFILE: &str = "Custom%3A Integration";
pub const DEFAULT_HEROKU_TOKEN: &str = "heroku-sim-api-token";
/// Developer name of the simulated org's External Client App.
pub const DEFAULT_APP: &str = "IPGuard";

impl SimConfig {
    /// A small org: `Admin` (no ranges), `Custom%3A Support` (one legacy-sized office range),
    /// `Custom%3A Integration` (allows 203.0.113.10, the caller) and `Standard` (no ranges);
    /// Heroku space `acme-space` enabled with sources 203.0.113.10 and 203.0.113.11; deploys
    /// spend 150 ms Pending and 150 ms InProgress.
    pub fn new(certificate_pem: String) -> Self {
        let range = |start: &str, end: &str, description: &str| {
            LoginIpRange::parse_existing(start, end, Some(description))
                .expect("built-in ranges are well-formed")
        };
        Self {
            org_id: DEFAULT_ORG_ID.to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            username: DEFAULT_USERNAME.to_owned(),
            certificate_pem,
            integration_profile: DEFAULT_INTEGRATION_PROFILE.to_owned(),
            caller_ip: IpAddr::from([203, 0, 113, 10]),
            profiles: vec![
                ("Admin".to_owned(), Vec::new()),
                (
                    "Custom%3A Support".to_owned(),
                    vec![range("198.51.100.0", "198.51.100.255", "Head office")],
                ),
                (
                    DEFAULT_INTEGRATION_PROFILE.to_owned(),
                    vec![range("203.0.113.10", "203.0.113.10", "ipguard: acme-space")],
                ),
                ("Standard".to_owned(), Vec::new()),
            ],
            production: false,
            pending_for: Duration::from_millis(150),
            in_progress_for: Duration::from_millis(150),
            heroku: SimHeroku {
                space: "acme-space".to_owned(),
                api_token: DEFAULT_HEROKU_TOKEN.to_owned(),
                state: "enabled".to_owned(),
                sources: vec!["203.0.113.10".to_owned(), "203.0.113.11".to_owned()],
            },
            event_signing_key: None,
            enforce_ip_ranges_every_request: false,
            external_client_apps: vec![(DEFAULT_APP.to_owned(), "Enforce".to_owned())],
        }
    }
}

/// Fault knobs. `Faults::default()` is a healthy org (the user approved the app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every response (Salesforce and Heroku calls).
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Consumed one per Salesforce call, in order. API-only kinds (REQUEST_LIMIT_EXCEEDED,
    /// SERVER_UNAVAILABLE, INVALID_SESSION_ID) wait at the head of the queue for the next SOAP
    /// or REST query call (REST answers them as JSON errors: 403, 503, 401); a token call only
    /// consumes `Http500`/`Http503`.
    pub next_failures: Vec<FailureKind>,
    /// Each session dies after this many Metadata calls → `INVALID_SESSION_ID`.
    pub session_expires_after_calls: Option<u32>,
    /// How deploys end.
    pub deploy_outcome: DeployOutcome,
    /// Whether the integration user is pre-authorized for the app (false → `invalid_grant`).
    pub user_approved: bool,
    /// HTTP statuses (429, 5xx) the next Heroku API calls answer with, one per call.
    pub heroku_failures: Vec<u16>,
    /// A time-based outage: from the moment these faults are set, every Salesforce call fails
    /// with its kind until the duration has passed (before `next_failures` is consulted).
    pub outage: Option<Outage>,
}

/// Salesforce failing every call for a while (a maintenance window, an exhausted daily API
/// limit), as opposed to `next_failures`' fixed number of failures. Which calls fail follows
/// `next_failures`' rule: a token call only fails for `Http500`/`Http503`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub kind: FailureKind,
    /// Counted from when the faults were set ([`SimOrg::set_faults`], `PUT /sim/faults`).
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            next_failures: Vec::new(),
            session_expires_after_calls: None,
            deploy_outcome: DeployOutcome::Succeed,
            user_approved: true,
            heroku_failures: Vec::new(),
            outage: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// HTTP 500 with a plain-text body.
    Http500,
    /// HTTP 503 with an HTML maintenance page.
    Http503,
    /// SOAP fault `REQUEST_LIMIT_EXCEEDED` (concurrent requests).
    RequestLimitExceeded,
    /// SOAP fault `REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.` (the daily allocation).
    DailyRequestLimitExceeded,
    /// SOAP fault `SERVER_UNAVAILABLE`.
    ServerUnavailable,
    /// SOAP fault `INVALID_SESSION_ID`; the session used is killed.
    InvalidSession,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployOutcome {
    /// Deploys are validated and applied like Salesforce would.
    #[default]
    Succeed,
    /// Deploys end `Failed` with one componentFailure per problem; nothing is applied.
    Fail(Vec<String>),
    /// Deploys stay `InProgress` until the outcome is changed.
    Stuck,
}

/// One request the sim received, or one delivery attempt it made (`send.…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// `token`, `listMetadata`, `readMetadata`, `deploy`, `checkDeployStatus`, `query` (REST),
    /// `heroku.nat`
    /// (another SOAP operation appears under its own name, an unreadable envelope as `soap`);
    /// `send.outbound_message` and `send.platform_event` for each delivery attempt.
    pub operation: String,
    /// `ok`, or the error: a token `error_description` (`ip restricted`), a SOAP fault code
    /// (`INVALID_SESSION_ID`), `http_500`/`http_503`, or a Heroku error id (`unauthorized`).
    /// A delivery attempt: `ack`, `http_NNN`, `nack` (HTTP 200 without the ACK envelope),
    /// `timeout` or `unreachable`.
    pub outcome: String,
}

/// A deploy request the sim accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployRecord {
    pub id: String,
    pub check_only: bool,
    pub rollback_on_error: bool,
    pub test_level: Option<String>,
    /// Profile members named in package.xml (verbatim).
    pub profiles: Vec<String>,
    /// Every entry name in the zip, verbatim.
    pub files: Vec<String>,
    /// Current `DeployStatus`: Pending, InProgress, Succeeded, SucceededPartial or Failed.
    pub status: String,
    /// The componentFailures' problems once finished.
    pub problems: Vec<String>,
    /// When Salesforce would say the deploy finished (`completedDate`); `None` until a status
    /// check after that moment has seen it finish.
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One `SetupAuditTrail` entry the sim recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// `0Ym…`
    pub id: String,
    /// [`AUDIT_ACTION`] (a guess: Salesforce does not document it), or a side door's
    /// ([`SESSION_SETTINGS_ACTION`], [`EXTERNAL_CLIENT_APP_ACTION`], [`CONNECTED_APP_ACTION`]).
    pub action: String,
    /// [`AUDIT_SECTION`], or [`SESSION_SETTINGS_SECTION`], [`EXTERNAL_CLIENT_APPS_SECTION`],
    /// [`CONNECTED_APPS_SECTION`].
    pub section: String,
    /// `Changed login IP range for profile <label> from <a - b, …|(none)> to <…>`, the
    /// profile named by its label (`Custom: Support`, `System Administrator`); for a side door
    /// `Changed Enforce login IP ranges on every request from Off to On`, `Changed IP
    /// relaxation for IPGuard from Enforce to Bypass` (GUESSES, docs/sim.md).
    pub display: String,
    /// Millisecond precision, like Salesforce's.
    pub created_date: chrono::DateTime<chrono::Utc>,
    pub created_by_id: String,
    /// `CreatedBy.Username`: [`ADMIN_USERNAME`] or the integration user.
    pub username: String,
}

/// A running simulated org.
pub struct SimOrg {
    shared: web::Data<Shared>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<io::Result<()>>,
    base_url: String,
    /// The HTTPS front ([`SimOrg::start_tls`]), aborted on stop.
    tls_task: Option<tokio::task::JoinHandle<()>>,
    /// Signs platform-event callouts; set at start or on first use.
    event_key: OnceLock<emitter::EventKey>,
}

impl SimOrg {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves until [`SimOrg::stop`].
    /// An unreadable certificate is `InvalidInput`.
    pub async fn start(config: SimConfig, port: u16) -> io::Result<SimOrg> {
        Self::start_with(config, port, None).await
    }

    /// [`SimOrg::start`] over HTTPS: `tls` (see [`TlsMaterial::generate`]) answers on
    /// 127.0.0.1:`port` and the base URL is `https://…`.
    pub async fn start_tls(config: SimConfig, port: u16, tls: TlsMaterial) -> io::Result<SimOrg> {
        Self::start_with(config, port, Some(tls)).await
    }

    async fn start_with(
        config: SimConfig,
        port: u16,
        tls: Option<TlsMaterial>,
    ) -> io::Result<SimOrg> {
        let event_key = OnceLock::new();
        if let Some(material) = &config.event_signing_key {
            let key = emitter::EventKey::from_material(material)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let _ = event_key.set(key);
        }
        // With TLS the public port is the TLS front's; the org's HTTP listener takes any free
        // loopback port behind it.
        let (listener, tls_front) = match &tls {
            None => (std::net::TcpListener::bind(("127.0.0.1", port))?, None),
            Some(_) => (
                std::net::TcpListener::bind(("127.0.0.1", 0))?,
                Some(tokio::net::TcpListener::bind(("127.0.0.1", port)).await?),
            ),
        };
        let base_url = match &tls_front {
            None => format!("http://127.0.0.1:{}", listener.local_addr()?.port()),
            Some(front) => format!("https://127.0.0.1:{}", front.local_addr()?.port()),
        };
        let backend = listener.local_addr()?;
        let state = SimState::new(config, base_url.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let shared = web::Data::new(Shared::new(state));
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .configure(routes)
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        let tls_task = match (tls, tls_front) {
            (Some(tls), Some(front)) => Some(tokio::spawn(async move {
                tls::serve(front, backend, &tls).await;
            })),
            _ => None,
        };
        Ok(SimOrg {
            shared,
            handle,
            task,
            base_url,
            tls_task,
            event_key,
        })
    }

    /// `http://127.0.0.1:PORT` — login URL, `instance_url` and Heroku API URL all at once.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn org_id(&self) -> String {
        self.shared.lock().org_id.clone()
    }

    /// An admin edit in Setup: replaces the profile's whole list (creates the profile if the
    /// org has none by that name).
    pub fn set_login_ip_ranges(&self, profile: &str, ranges: Vec<LoginIpRange>) {
        self.shared.lock().set_ranges(profile, ranges, Actor::Admin);
    }

    /// The profile's current ranges; `None` for an unknown profile.
    pub fn login_ip_ranges(&self, profile: &str) -> Option<Vec<LoginIpRange>> {
        self.shared
            .lock()
            .profile(profile)
            .map(|p| p.ranges.clone())
    }

    /// The audit trail so far, oldest first.
    pub fn audit_trail(&self) -> Vec<AuditEntry> {
        self.shared.lock().audit.clone()
    }

    /// Whether the integration user has "View Setup and Configuration" (default true): needed
    /// to query `SetupAuditTrail` and the app-access objects (SetupEntityAccess, PermissionSet,
    /// PermissionSetAssignment, PermissionSetGroup(Component), ConnectedApplication,
    /// ExternalClientApplication); false → 403 `INSUFFICIENT_ACCESS`.
    pub fn set_audit_trail_readable(&self, readable: bool) {
        self.shared.lock().audit_readable = readable;
    }

    /// Records per REST query page (default 2000, Salesforce's batch size); more records are
    /// served through `nextRecordsUrl`.
    pub fn set_query_page_size(&self, size: usize) {
        self.shared.lock().query_page_size = size.max(1);
    }

    /// How long deploys stay `Pending`, then `InProgress`, from now on (unfinished ones too).
    pub fn set_deploy_timing(&self, pending_for: Duration, in_progress_for: Duration) {
        let mut state = self.shared.lock();
        state.pending_for = pending_for;
        state.in_progress_for = in_progress_for;
    }

    /// Replaces every fault knob; an `outage` starts now.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().set_faults(faults);
    }

    pub fn set_heroku(&self, heroku: SimHeroku) {
        self.shared.lock().set_heroku(heroku);
    }

    /// The space gets new outbound IPs (re-created, moved region): the NAT lists `sources`
    /// (state `enabled`) and the process's egress — the IP the org sees every call from —
    /// moves to the first of them.
    pub fn change_nat(&self, sources: &[&str]) {
        let mut state = self.shared.lock();
        let mut heroku = state.heroku.clone();
        heroku.state = "enabled".to_owned();
        heroku.sources = sources.iter().map(|s| (*s).to_owned()).collect();
        if let Some(ip) = sources.first().and_then(|s| s.parse().ok()) {
            state.caller_ip = ip;
        }
        state.set_heroku(heroku);
    }

    /// The IP the org sees every call from (a laptop, another egress).
    pub fn set_caller_ip(&self, ip: IpAddr) {
        self.shared.lock().caller_ip = ip;
    }

    /// Whether the integration user may read its LoginHistory (default true); false → 403
    /// `INSUFFICIENT_ACCESS`, as for a user without the permission (a GUESS: docs/sim.md).
    pub fn set_login_history_readable(&self, readable: bool) {
        self.shared.lock().login_history_readable = readable;
    }

    /// The integration user's LoginHistory so far, oldest first: (source IP, status).
    pub fn login_history(&self) -> Vec<(IpAddr, String)> {
        self.shared
            .lock()
            .logins
            .iter()
            .map(|l| (l.source_ip, l.status.clone()))
            .collect()
    }

    /// An admin toggles Session Settings › "Enforce login IP ranges on every request"
    /// (audited: Section [`SESSION_SETTINGS_SECTION`]).
    pub fn set_enforce_ip_ranges_every_request(&self, on: bool) {
        self.set_session_setting(
            "enforceIpRangesEveryRequest",
            if on { "true" } else { "false" },
        );
    }

    /// Session Settings › "Enforce login IP ranges on every request" as the org has it.
    pub fn enforce_ip_ranges_every_request(&self) -> bool {
        self.session_setting("enforceIpRangesEveryRequest")
            .is_some_and(|v| v == "true")
    }

    /// An admin sets one `sessionSettings` field of SecuritySettings (audited when it
    /// changes). Panics on a name SessionSettings does not have.
    pub fn set_session_setting(&self, name: &str, value: &str) {
        assert!(
            ipguard_wire::side_doors::SESSION_SETTINGS_SEQUENCE.contains(&name),
            "SessionSettings has no field {name}"
        );
        self.shared.lock().update_session_settings(
            &vec![(name.to_owned(), value.to_owned())],
            Actor::Admin,
            chrono::Utc::now(),
        );
    }

    /// One `sessionSettings` field's text; `None` when the org has no value for it.
    pub fn session_setting(&self, name: &str) -> Option<String> {
        self.shared.lock().session_setting(name).map(str::to_owned)
    }

    /// Sets an External Client App's `ipRelaxationPolicyType` (creating the app with default
    /// OAuth policies); `None` deletes the app and its grants. A change of an existing app is
    /// audited (Section [`EXTERNAL_CLIENT_APPS_SECTION`]).
    pub fn set_external_client_app(&self, name: &str, ip_relaxation: Option<&str>) {
        self.shared
            .lock()
            .set_external_client_app(name, ip_relaxation);
    }

    /// An admin sets (`None`: removes) one field of an External Client App's OAuth policies
    /// (audited when it changes). Panics on an unknown app.
    pub fn set_eca_policy_field(&self, app: &str, field: &str, value: Option<&str>) {
        self.shared.lock().set_eca_policy_field(app, field, value);
    }

    /// One field of an External Client App's OAuth policies; `None` when absent (or no app).
    pub fn eca_policy_field(&self, app: &str, field: &str) -> Option<String> {
        let state = self.shared.lock();
        let record = state.eca(app)?;
        record
            .policies
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.clone())
    }

    /// Sets a legacy connected app's `oauthPolicy/ipRelaxation` (creating the app with a
    /// default record); `None` deletes it and its grants. A change of an existing app is
    /// audited (Section [`CONNECTED_APPS_SECTION`]).
    pub fn set_connected_app(&self, name: &str, ip_relaxation: Option<&str>) {
        self.shared.lock().set_connected_app(name, ip_relaxation);
    }

    /// One field of a connected app's record by path (`contactEmail`,
    /// `oauthPolicy/refreshTokenPolicy`); `None` when absent (or no app).
    pub fn connected_app_field(&self, app: &str, path: &str) -> Option<String> {
        let state = self.shared.lock();
        let record = state.connected_app_record(app)?;
        record
            .fields
            .iter()
            .find(|(f, _)| f == path)
            .map(|(_, v)| v.clone())
    }

    /// The app's IP relaxation: an External Client App's `ipRelaxationPolicyType`, else a
    /// connected app's `oauthPolicy/ipRelaxation`.
    pub fn ip_relaxation(&self, app: &str) -> Option<String> {
        self.shared.lock().ip_relaxation(app)
    }

    /// Adds a user of `profile` (panics on an unknown profile or a taken username); returns
    /// its id (`005…`).
    pub fn add_user(&self, username: &str, profile: &str, active: bool) -> String {
        self.shared.lock().add_user(username, profile, active)
    }

    /// Adds a permission set by API name (or returns the existing one's id, `0PS…`).
    pub fn add_permission_set(&self, api_name: &str) -> String {
        self.shared.lock().add_permission_set(api_name)
    }

    /// Adds a permission set group of these permission sets (API names); returns its id
    /// (`0PG…`). The group gets its own aggregate permission set.
    pub fn add_permission_set_group(
        &self,
        developer_name: &str,
        permission_sets: &[&str],
    ) -> String {
        self.shared
            .lock()
            .add_permission_set_group(developer_name, permission_sets)
    }

    /// Assigns a permission set to a user (a PermissionSetAssignment row).
    pub fn assign_permission_set(&self, username: &str, api_name: &str) {
        self.shared.lock().assign_permission_set(username, api_name);
    }

    /// Assigns a permission set group to a user: a PermissionSetAssignment row with
    /// PermissionSetGroupId = the group, PermissionSetId = the group's aggregate permission set.
    pub fn assign_permission_set_group(&self, username: &str, developer_name: &str) {
        self.shared
            .lock()
            .assign_permission_set_group(username, developer_name);
    }

    /// Removes the user's permission set and group assignments (its profile stays).
    pub fn unassign_all(&self, username: &str) {
        self.shared.lock().unassign_all(username);
    }

    /// Grants an app (External Client App developer name, else connected app name) to a
    /// profile: a SetupEntityAccess row under the profile-owned permission set.
    pub fn grant_app_to_profile(&self, app: &str, profile: &str) {
        self.shared.lock().grant_app_to_profile(app, profile);
    }

    /// Grants an app to a permission set (API name).
    pub fn grant_app_to_permission_set(&self, app: &str, api_name: &str) {
        self.shared
            .lock()
            .grant_app_to_permission_set(app, api_name);
    }

    pub fn revoke_app_from_profile(&self, app: &str, profile: &str) {
        self.shared.lock().revoke_app_from_profile(app, profile);
    }

    pub fn revoke_app_from_permission_set(&self, app: &str, api_name: &str) {
        self.shared
            .lock()
            .revoke_app_from_permission_set(app, api_name);
    }

    /// Adds a custom profile with these ranges if the org has none by that name (no audit
    /// entry: it is not a range change). Listed by listMetadata, readable and deployable like
    /// the others, with its own profile-owned permission set.
    pub fn add_profile(&self, full_name: &str, ranges: Vec<LoginIpRange>) {
        let mut state = self.shared.lock();
        if state.profile(full_name).is_none() {
            let profile =
                state::ProfileState::new(full_name, ranges, chrono::Utc::now(), Actor::Admin);
            state.profiles.push(profile);
        }
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// How many requests of this operation were received.
    pub fn count(&self, operation: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    pub fn clear_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Each accepted deploy request, oldest first, with its current status.
    pub fn deploys(&self) -> Vec<DeployRecord> {
        self.shared.lock().deploy_records()
    }

    /// Stops the server (in-flight requests get a second to finish).
    pub async fn stop(self) {
        if let Some(tls_task) = &self.tls_task {
            tls_task.abort();
        }
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// `ipguard sim`: starts the org, prints where it listens, and serves until Ctrl-C. With
/// `tls`, serves HTTPS and writes the CA certificate clients must trust to `tls.1`.
pub async fn run_standalone(
    config: SimConfig,
    port: u16,
    tls: Option<(TlsMaterial, std::path::PathBuf)>,
) -> io::Result<()> {
    let org_id = config.org_id.clone();
    let client_id = config.client_id.clone();
    let username = config.username.clone();
    let space = config.heroku.space.clone();
    let sim = match tls {
        None => SimOrg::start(config, port).await?,
        Some((tls, ca_path)) => {
            std::fs::write(&ca_path, &tls.ca_pem)?;
            println!(
                "  SIM_CA_CERT={}  (trust it: NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, curl --cacert)",
                ca_path.display()
            );
            SimOrg::start_tls(config, port, tls).await?
        }
    };
    let url = sim.base_url();
    println!("simulated Salesforce org {org_id} listening on {url}");
    println!("  SALESFORCE_LOGIN_URL={url}");
    println!("  SALESFORCE_CLIENT_ID={client_id}");
    println!("  SALESFORCE_USERNAME={username}");
    println!("  SALESFORCE_ORG_ID={org_id}");
    println!("  HEROKU_API_URL={url}  HEROKU_SPACE={space}");
    println!(
        "  admin: GET {url}/sim/state, GET {url}/sim/calls, PUT {url}/sim/faults, PUT {url}/sim/settings, \
         PUT {url}/sim/heroku, PUT {url}/sim/profiles/{{fullName}}/login-ip-ranges"
    );
    println!("press Ctrl-C to stop");
    let result = tokio::signal::ctrl_c().await;
    sim.stop().await;
    result
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/services/oauth2/token", web::post().to(oauth::token))
        // The Metadata endpoint answers whatever follows the version: the org id suffix of
        // `metadataServerUrl`, a trailing slash, simple-salesforce's `deployRequest[/{id}]`.
        .route("/services/Soap/m/{version}", web::post().to(soap::handle))
        .route(
            "/services/Soap/m/{version}/{tail:.*}",
            web::post().to(soap::handle),
        )
        .route("/services/data/{version}/query", web::get().to(rest::query))
        .route(
            "/services/data/{version}/query/",
            web::get().to(rest::query),
        )
        .route(
            "/services/data/{version}/query/{locator}",
            web::get().to(rest::query_more),
        )
        .route(
            "/services/data/{version}/metadata/deployRequest",
            web::post().to(rest_deploy::submit),
        )
        .route(
            "/services/data/{version}/metadata/deployRequest/{id}",
            web::get().to(rest_deploy::status),
        )
        .route("/spaces/{space}/nat", web::get().to(heroku::nat))
        .configure(admin::routes)
        .default_service(web::to(not_found));
}

/// An unknown path. Under `/services/` it is Salesforce's REST error shape (a JSON array of
/// `errorCode`/`message`, the text a real org gives); elsewhere (the Heroku side, `/sim/`)
/// Heroku's `{"id", "message"}`.
async fn not_found(request: actix_web::HttpRequest) -> HttpResponse {
    let body = if request.path().starts_with("/services/") {
        serde_json::json!([{
            "errorCode": "NOT_FOUND",
            "message": "The requested resource does not exist",
        }])
    } else {
        serde_json::json!({ "id": "not_found", "message": "Couldn't find that resource." })
    };
    HttpResponse::NotFound()
        .content_type("application/json;charset=UTF-8")
        .body(body.to_string())
}

/// Serde for a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
